/**
 * Child process for the file driver's cross-process test: increments a JSON
 * counter object `iterations` times with read-modify-write under generation
 * preconditions, retrying when another process got there first.
 * Usage: node --import=tsx cas-worker.ts <repository url> <key> <iterations> <worker id>
 */
import { Readable } from 'node:stream';
import { FileStorage } from '../../../../core/storage/file/storage.ts';
import { readSmallObject } from '../../../../core/storage/objects.ts';

const [url, key, iterations, id] = process.argv.slice(2);
const storage = new FileStorage(url);
let conflicts = 0;
for (let done = 0; done < Number(iterations); ) {
  const info = await storage.stat(key);
  if (!info) throw new Error(`${key} is missing`);
  const body = JSON.parse((await readSmallObject(storage, key)).toString()) as { by: string[] };
  try {
    await storage.write(key, Readable.from([Buffer.from(JSON.stringify({ by: [...body.by, `${id}:${done}`] }))]), { ifGenerationMatch: info.generation });
    done++;
  } catch (err) {
    if ((err as { code?: string }).code !== 'precondition_failed') throw err;
    conflicts++;
  }
}
process.stdout.write(`${conflicts}\n`);
