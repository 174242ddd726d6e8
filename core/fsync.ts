import * as fs from 'node:fs/promises';

/**
 * fsync a file or a directory by path: for a file its content is durable, for
 * a directory the entries created or renamed in it are. Throws the file
 * system's error (ENOENT, EACCES...) unchanged.
 */
export async function fsyncPath(p: string): Promise<void> {
  const handle = await fs.open(p, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
