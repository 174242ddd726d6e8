import test from 'ava';
import { errnoError, GcwalError, LocalIoError, localIoError, StorageError } from '../../core/errors.ts';
import { mapFsError } from '../../core/storage/file/errors.ts';

const errno = (code: string) => Object.assign(new Error(`${code}: something`), { code });

const rows: { name: string; code: string; local: RegExp; repository: RegExp; transient: boolean }[] = [
  { name: 'a full disk', code: 'ENOSPC', local: /^the file system is full/, repository: /^the repository file system is full/, transient: false },
  { name: 'a quota', code: 'EDQUOT', local: /^the file system is full/, repository: /^the repository file system is full/, transient: false },
  { name: 'a denied permission', code: 'EACCES', local: /permissions of the path/, repository: /read and write the repository directory/, transient: false },
  { name: 'a read-only file system', code: 'EROFS', local: /read-only/, repository: /repository file system is read-only/, transient: false },
  { name: 'an I/O error', code: 'EIO', local: /check the local disk/, repository: /check the repository file system/, transient: true },
  { name: 'a busy resource', code: 'EBUSY', local: /check the local disk/, repository: /check the repository file system/, transient: true },
  { name: 'anything else', code: 'EINVAL', local: /check the local disk/, repository: /check the repository file system/, transient: false },
];

for (const row of rows) {
  test(`${row.name} (${row.code}) on a local path is a LocalIoError and in a file:// repository a StorageError, each with its hint`, (t) => {
    const local = localIoError(errno(row.code), 'write x');
    t.true(local instanceof LocalIoError);
    t.is(local.message, `write x failed: ${row.code}`);
    t.regex(local.hint, row.local);
    const repository = mapFsError(errno(row.code), 'write x');
    t.true(repository instanceof StorageError);
    t.is(repository.message, `write x failed: ${row.code}`);
    t.regex(repository.hint, row.repository);
    t.is((repository as StorageError).transient, row.transient);
  });
}

test('a cancelled repository call says so; a GcwalError passes through either mapping unchanged', (t) => {
  const cancelled = errnoError(errno('ABORT_ERR'), 'read y', 'repository');
  t.true(cancelled instanceof StorageError);
  t.is(cancelled.message, 'read y was cancelled');
  const already = new StorageError('already mapped', true, 'hint');
  t.is(errnoError(already, 'z', 'local'), already);
  t.is(errnoError(already, 'z', 'repository'), already);
  t.true(errnoError(new Error('no code'), 'z', 'local') instanceof GcwalError);
});
