import test from 'ava';
import { earlyRepoWantsHelper } from '../../../agent/wal/early-helper.ts';
import { lzoHelperWanted } from '../../../agent/wal/helper-policy.ts';

test('wal-push compresses with a helper thread into file:// but not into gs://', (t) => {
  t.true(lzoHelperWanted('file:///var/lib/gcwal'));
  t.true(lzoHelperWanted(undefined), 'no repository yet: the configuration decides later');
  t.false(lzoHelperWanted('gs://bucket/prefix'));
});

const rows: [string, string[], Record<string, string>, boolean][] = [
  ['GCWAL_REPO is file://', ['pg_wal/000000010000000000000001'], { GCWAL_REPO: 'file:///archive' }, true],
  ['GCWAL_REPO is gs://', ['pg_wal/000000010000000000000001'], { GCWAL_REPO: 'gs://b/p' }, false],
  ['--repo=gs:// overrides a file:// GCWAL_REPO', ['--repo=gs://b', 'pg_wal/x'], { GCWAL_REPO: 'file:///archive' }, false],
  ['--repo file:// overrides a gs:// GCWAL_REPO', ['--repo', 'file:///archive', 'pg_wal/x'], { GCWAL_REPO: 'gs://b' }, true],
  ['no repository is known yet', ['pg_wal/x'], {}, true],
];
for (const [what, args, env, expected] of rows) {
  test(`the entry ${expected ? 'starts' : 'does not start'} the helper early when ${what}`, (t) => {
    t.is(earlyRepoWantsHelper(args, env), expected);
  });
}
