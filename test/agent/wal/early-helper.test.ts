import test from 'ava';
import { tlsAhead } from '../../../agent/wal/early-helper.ts';

const rows: [string, string[], Record<string, string>, boolean][] = [
  ['a gs:// repository from the environment, Google\'s endpoint', ['pg_wal/0001'], { GCWAL_REPO: 'gs://b/p' }, true],
  ['a gs:// repository on an https emulator', ['pg_wal/0001'], { GCWAL_REPO: 'gs://b', GCWAL_GCS_ENDPOINT: 'https://127.0.0.1:9' }, true],
  ['a gs:// repository on a plain http endpoint', ['pg_wal/0001'], { GCWAL_REPO: 'gs://b', GCWAL_GCS_ENDPOINT: 'http://127.0.0.1:9' }, false],
  ['the standard emulator variable on plain http', ['pg_wal/0001'], { GCWAL_REPO: 'gs://b', STORAGE_EMULATOR_HOST: 'HTTP://127.0.0.1:9' }, false],
  ['a file:// repository', ['pg_wal/0001'], { GCWAL_REPO: 'file:///archive' }, false],
  ['no repository at all', ['pg_wal/0001'], {}, false],
  ['a gs:// repository given as --repo=', ['pg_wal/0001', '--repo=gs://b'], {}, true],
  ['a gs:// repository given as --repo and a value', ['--repo', 'gs://b', 'pg_wal/0001'], { GCWAL_REPO: 'file:///archive' }, true],
];

for (const [what, args, env, expected] of rows) {
  test(`the helper ${expected ? 'primes' : 'does not prime'} TLS for ${what}`, (t) => {
    t.is(tlsAhead(args, env), expected);
  });
}
