/**
 * Turn a restored data directory into one that starts archive recovery:
 * the recovery settings block appended to postgresql.auto.conf, then
 * recovery.signal. The text itself is built (and tested) in
 * core/restore/recovery-config.ts.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { appendDurably, writeFileDurably } from './disk.ts';

/** The file PostgreSQL reads after postgresql.conf; later settings win. */
export const AUTO_CONF = 'postgresql.auto.conf';

/** Its presence makes PostgreSQL run targeted archive recovery (not standby mode). */
export const RECOVERY_SIGNAL = 'recovery.signal';

/**
 * Append `block` (from recoveryConfigBlock) to `<dataDir>/postgresql.auto.conf`
 * on a line of its own, then create an empty recovery.signal; both fsynced.
 * The signal comes last so that a crash in between leaves no signal without
 * its settings.
 */
export async function writeRecoverySetup(dataDir: string, block: string): Promise<void> {
  const conf = path.join(dataDir, AUTO_CONF);
  let separator = '';
  try {
    const existing = await fs.readFile(conf, 'utf8');
    if (existing !== '' && !existing.endsWith('\n')) separator = '\n';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await appendDurably(conf, separator + block);
  await writeFileDurably(path.join(dataDir, RECOVERY_SIGNAL), '');
}
