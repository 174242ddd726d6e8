import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import type { ObjectInfo, Storage } from '../../../core/storage/types.ts';
import { checkBackupForVerdicts, validateBackup, validateBackupPart } from '../../../core/validate/index.ts';
import { makeSyntheticBackup, writeObjects } from '../../../local/testkit/synthetic-backup.ts';

const dirs: string[] = [];
test.after.always(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));
const SYSID = '7300000000000000042';

async function repository(): Promise<FileStorage> {
  const dir = await mkdtemp(path.join(tmpdir(), 'gcwal-backup-verdict-'));
  dirs.push(dir);
  const storage = new FileStorage(pathToFileURL(dir).href);
  await storage.createRoot();
  return storage;
}

/** `storage`, noting the key of every read. */
function reading(storage: Storage, reads: string[]): Storage {
  return new Proxy(storage, {
    get(target, prop) {
      if (prop === 'read')
        return (key: string, ...rest: unknown[]) => (reads.push(key), (target.read as (...a: unknown[]) => unknown).call(target, key, ...rest));
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

test('the seals backup.json and the manifest give are those of its parts, except a part whose tar differs from the manifest', async (t) => {
  const storage = await repository();
  const backup = await makeSyntheticBackup({ parts: 6, systemIdentifier: SYSID, damaged: [4] });
  await writeObjects(storage, [...backup.parts, backup.manifest, backup.backupJson]);
  const seals: string[] = [];
  for (const part of backup.parts) {
    const result = await validateBackupPart(storage, (await storage.stat(part.key))!);
    t.true(result.ok, result.problem);
    seals.push(result.details!.seal as string);
  }
  const reads: string[] = [];
  const checked = await checkBackupForVerdicts(reading(storage, reads), (await storage.stat(backup.backupJson.key))!, { systemIdentifier: SYSID });
  t.true(checked.ok, checked.problem);
  t.is(checked.partSeals!.length, 6);
  t.deepEqual(
    checked.partSeals!.map((s, i) => s === seals[i]),
    [true, true, true, true, false, true],
  );
  t.deepEqual(reads.sort(), [backup.backupJson.key, backup.manifest.key], 'no part is read');
  // The full check (the agent's) finds the same part by reading it.
  const full = await validateBackup(storage, (await storage.stat(backup.backupJson.key))!, { systemIdentifier: SYSID });
  t.regex(full.problem ?? '', /in part 4 \(backups\/base_000000010000000000000002\/part_00004\.tar\)/);
});

test('a part missing from the folder, or stored otherwise than backup.json records, fails the check at once', async (t) => {
  const storage = await repository();
  const backup = await makeSyntheticBackup({ parts: 3, systemIdentifier: SYSID });
  await writeObjects(storage, [backup.parts[0], backup.parts[2], backup.manifest, backup.backupJson]);
  const info = (await storage.stat(backup.backupJson.key))!;
  const missing = await checkBackupForVerdicts(storage, info);
  t.false(missing.ok);
  t.regex(missing.problem!, /^part 1 \(backups\/.*\/part_00001\.tar\) of backup base_\w+ is missing$/);
  t.is(missing.backup?.name, backup.name, 'the backup is still catalogued, as corrupt');

  await writeObjects(storage, [{ ...backup.parts[1], body: Buffer.concat([backup.parts[1].body, Buffer.alloc(512)]) }]);
  const longer = await checkBackupForVerdicts(storage, info);
  t.regex(longer.problem ?? '', /^part 1 \(.*\) of backup .* is \d+ bytes with crc32c .*, but backup\.json records/);
});

test('a part replaced after backup.json was checked no longer carries the seal the check gave', async (t) => {
  const storage = await repository();
  const backup = await makeSyntheticBackup({ parts: 2, systemIdentifier: SYSID });
  await writeObjects(storage, [...backup.parts, backup.manifest, backup.backupJson]);
  const checked = await checkBackupForVerdicts(storage, (await storage.stat(backup.backupJson.key))!);
  const before: ObjectInfo = (await storage.stat(backup.parts[1].key))!;
  await storage.delete(before.key);
  await writeObjects(storage, [backup.parts[1]]);
  const after = await validateBackupPart(storage, (await storage.stat(backup.parts[1].key))!);
  t.true(after.ok);
  t.not(after.details!.seal, checked.partSeals![1], 'same bytes, another generation');
});
