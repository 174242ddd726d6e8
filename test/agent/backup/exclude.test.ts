import test from 'ava';
import {
  excludedNameReason,
  excludedRelationReason,
  isDatabaseDirectory,
  isTablespaceVersionDirectory,
  parseRelationFileName,
} from '../../../agent/backup/exclude.ts';

const names: [string, boolean][] = [
  ['postmaster.pid', true],
  ['postmaster.opts', true],
  ['pg_internal.init', true],
  ['pg_internal.init.12345', true],
  ['backup_label', true],
  ['backup_label.old', false],
  ['tablespace_map', true],
  ['backup_manifest', true],
  ['standby.signal', true],
  ['recovery.signal', true],
  ['postgresql.auto.conf.tmp', true],
  ['postgresql.auto.conf', false],
  ['current_logfiles.tmp', true],
  ['current_logfiles', false],
  ['pgsql_tmp', true],
  ['pgsql_tmp1234.0', true],
  ['PG_VERSION', false],
  ['pg_control', false],
  ['16384', false],
];

for (const [name, excluded] of names) {
  test(`a file named ${name} is ${excluded ? 'left out' : 'backed up'}`, (t) => {
    t.is(excludedNameReason(name) !== undefined, excluded);
  });
}

const dirs: [string, boolean][] = [
  ['base/1', true],
  ['base/16384', true],
  ['base', false],
  ['base/pgsql_tmp', false],
  ['global', false],
  ['pg_tblspc/16500/PG_15_202209061/16384', true],
  ['pg_tblspc/16500/PG_15_202209061', false],
  ['pg_tblspc/16500/PG_15_202209061/16384/sub', false],
];

for (const [dir, isDb] of dirs) {
  test(`${dir} ${isDb ? 'is' : 'is not'} a database directory`, (t) => {
    t.is(isDatabaseDirectory(dir), isDb);
  });
}

test('relation file names are taken apart into number, fork and temporary flag', (t) => {
  t.deepEqual(parseRelationFileName('16384'), { relNumber: '16384', fork: 'main', temporary: false });
  t.deepEqual(parseRelationFileName('16384.12'), { relNumber: '16384', fork: 'main', temporary: false });
  t.deepEqual(parseRelationFileName('16384_fsm'), { relNumber: '16384', fork: 'fsm', temporary: false });
  t.deepEqual(parseRelationFileName('16384_vm.1'), { relNumber: '16384', fork: 'vm', temporary: false });
  t.deepEqual(parseRelationFileName('16384_init'), { relNumber: '16384', fork: 'init', temporary: false });
  t.deepEqual(parseRelationFileName('t3_16400'), { relNumber: '16400', fork: 'main', temporary: true });
  t.deepEqual(parseRelationFileName('t3_16400_fsm'), { relNumber: '16400', fork: 'fsm', temporary: true });
  t.is(parseRelationFileName('PG_VERSION'), undefined);
  t.is(parseRelationFileName('pg_filenode.map'), undefined);
  t.is(parseRelationFileName('16384_foo'), undefined);
});

test('an unlogged relation keeps only its init fork, a logged one keeps every fork', (t) => {
  const siblings = new Set(['16384', '16384.1', '16384_fsm', '16384_vm', '16384_init', '16390', '16390_fsm', 't3_16400', 'PG_VERSION']);
  const kept = [...siblings].filter((n) => excludedRelationReason(n, siblings) === undefined).sort();
  t.deepEqual(kept, ['16384_init', '16390', '16390_fsm', 'PG_VERSION']);
});

test('only the tablespace directory of this major version is ours', (t) => {
  t.true(isTablespaceVersionDirectory('PG_15_202209061', 15));
  t.false(isTablespaceVersionDirectory('PG_14_202107181', 15));
  t.false(isTablespaceVersionDirectory('PG_150_1', 15));
});
