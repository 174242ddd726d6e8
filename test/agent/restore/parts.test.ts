import test from 'ava';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { createLogger } from '../../../agent/log.ts';
import { DirectorySet } from '../../../agent/restore/disk.ts';
import type { ExtractTarget } from '../../../agent/restore/extract.ts';
import { restoreParts } from '../../../agent/restore/parts.ts';
import { CorruptObjectError } from '../../../core/errors.ts';
import { backupPartKey } from '../../../core/layout.ts';
import { FileStorage } from '../../../core/storage/file.ts';
import { makeTempDir } from '../../helpers/tmp.ts';
import { BACKUP_NAME, manifestEntryOf, writeFixtureBackup, type FixtureEntry } from './fixture.ts';

test('a part missing from the repository is a damaged backup, named by its index and key', async (t) => {
  const dir = await makeTempDir('parts');
  t.teardown(dir.cleanup);
  const storage = new FileStorage(pathToFileURL(path.join(dir.path, 'repo')).href);
  const entries: FixtureEntry[] = [{ path: 'a', content: 'a' }, { path: 'b', content: 'b', part: 1 }];
  const meta = await writeFixtureBackup(storage, { entries, parts: 2 });
  await storage.delete(backupPartKey(BACKUP_NAME, 1));
  const dest = path.join(dir.path, 'data');
  const target: ExtractTarget = {
    backupName: BACKUP_NAME,
    dest,
    tablespaces: new Map(),
    manifest: new Map(entries.map((e) => [e.path, manifestEntryOf(e)])),
    seen: new Set(),
    dirs: new DirectorySet(),
    progress: { add: () => {}, done: () => {} },
  };
  const log = createLogger(new Writable({ write: (_c, _e, done) => done() }), 'text');
  const err = await t.throwsAsync(restoreParts(storage, meta, target, { concurrency: 1, retries: 2, log }), { instanceOf: CorruptObjectError });
  t.is(err!.message, `part 1 (backups/${BACKUP_NAME}/part_00001.tar) of backup ${BACKUP_NAME} is missing from the repository`);
});
