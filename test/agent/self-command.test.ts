import test from 'ava';
import { chmod, mkdir, realpath, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { absoluteInvocation, BARE_COMMAND, fileSystemProbe, logicalCwd, selfCommand, type PathProbe } from '../../agent/self-command.ts';
import { makeTempDir, type TempDir } from '../../local/testkit/tmp.ts';

/** A file system that holds exactly these executables. */
const holding = (...files: string[]): PathProbe => ({ isExecutable: (file) => files.includes(file) });

const cases: { name: string; invokedAs: string; cwd?: string; pathEnv?: string; probe?: PathProbe; expected: string | undefined }[] = [
  { name: 'an absolute path is kept as given', invokedAs: '/usr/local/bin/gcwal', expected: '/usr/local/bin/gcwal' },
  { name: 'a relative path is made absolute against the working directory', invokedAs: './bin/gcwal', cwd: '/home/me', expected: '/home/me/bin/gcwal' },
  { name: 'a relative path without ./ too', invokedAs: 'opt/gcwal/bin/gcwal', cwd: '/srv', expected: '/srv/opt/gcwal/bin/gcwal' },
  { name: '.. is kept (a link before it decides where it leads)', invokedAs: '../tools/gcwal', cwd: '/home/me/link', expected: '/home/me/link/../tools/gcwal' },
  { name: 'doubled slashes and . components are dropped', invokedAs: '/opt//gcwal/./bin/gcwal', expected: '/opt/gcwal/bin/gcwal' },
  {
    name: 'a bare name is the first PATH entry that holds it',
    invokedAs: 'gcwal',
    pathEnv: '/usr/bin:/opt/gcwal/bin:/usr/local/bin',
    probe: holding('/opt/gcwal/bin/gcwal', '/usr/local/bin/gcwal'),
    expected: '/opt/gcwal/bin/gcwal',
  },
  {
    name: 'a bare name in an empty PATH entry is in the working directory',
    invokedAs: 'gcwal',
    cwd: '/opt/gcwal/bin',
    pathEnv: ':/usr/bin',
    probe: holding('/opt/gcwal/bin/gcwal'),
    expected: '/opt/gcwal/bin/gcwal',
  },
  {
    name: 'a bare name in a relative PATH entry',
    invokedAs: 'gcwal',
    cwd: '/srv',
    pathEnv: '/usr/bin:tools/bin',
    probe: holding('/srv/tools/bin/gcwal'),
    expected: '/srv/tools/bin/gcwal',
  },
  { name: 'a bare name on no PATH entry is not resolved', invokedAs: 'gcwal', pathEnv: '/usr/bin:/bin', expected: undefined },
  { name: 'an empty name is not resolved', invokedAs: '', expected: undefined },
];

for (const { name, invokedAs, cwd = '/work', pathEnv = '/usr/bin', probe = holding(), expected } of cases) {
  test(`resolving the launcher's $0: ${name}`, (t) => {
    t.is(absoluteInvocation(invokedAs, cwd, pathEnv, probe), expected);
  });
}

test('without the launcher, the launcher beside the bundle Node runs, else the bare name', (t) => {
  const probe = holding('/opt/gcwal/dist/gcwal');
  t.is(selfCommand({ launcher: undefined, script: '/opt/gcwal/dist/gcwal.mjs' }, '/', '/usr/bin', probe), '/opt/gcwal/dist/gcwal');
  t.is(selfCommand({ launcher: undefined, script: '/checkout/agent/cli.ts' }, '/', '/usr/bin', probe), BARE_COMMAND);
  t.is(selfCommand({ launcher: undefined, script: undefined }, '/', '/usr/bin', probe), BARE_COMMAND);
  t.is(selfCommand({ launcher: 'gcwal', script: '/opt/gcwal/dist/gcwal.mjs' }, '/', '/usr/bin', probe), '/opt/gcwal/dist/gcwal', 'a bare $0 found nowhere');
  t.is(
    selfCommand({ launcher: '/usr/local/bin/gcwal', script: '/opt/gcwal/dist/gcwal.mjs' }, '/', '/usr/bin', probe),
    '/usr/local/bin/gcwal',
    'the launcher wins',
  );
});

let dir: TempDir;
test.before(async () => {
  dir = await makeTempDir('self-command');
});
test.after.always(async () => {
  await dir?.cleanup();
});

test('on the real file system a symbolic link stays as named, and only executable files are found on PATH', async (t) => {
  const install = path.join(dir.path, 'lib', 'node_modules', 'gcwal', 'dist');
  const bin = path.join(dir.path, 'bin');
  const other = path.join(dir.path, 'other');
  await mkdir(install, { recursive: true });
  await mkdir(bin);
  await mkdir(other);
  await writeFile(path.join(install, 'gcwal'), '#!/bin/sh\n', { mode: 0o755 });
  await symlink('../lib/node_modules/gcwal/dist/gcwal', path.join(bin, 'gcwal'));
  // Not executable: the shell would pass it by, and so does the search.
  await writeFile(path.join(other, 'gcwal'), '');
  await chmod(path.join(other, 'gcwal'), 0o644);
  await mkdir(path.join(other, 'gcwal-dir'));
  const pathEnv = `${other}:${bin}`;
  t.is(absoluteInvocation('gcwal', '/', pathEnv, fileSystemProbe), path.join(bin, 'gcwal'));
  t.is(selfCommand({ launcher: path.join(bin, 'gcwal'), script: path.join(install, 'gcwal.mjs') }, '/', pathEnv, fileSystemProbe), path.join(bin, 'gcwal'));
  t.is(absoluteInvocation('gcwal-dir', '/', other, fileSystemProbe), undefined, 'a directory is not a command');
});

test("the working directory is the shell's logical one when it is the same directory, links kept", async (t) => {
  const real = path.join(dir.path, 'real');
  const link = path.join(dir.path, 'link');
  await mkdir(real);
  await symlink(real, link);
  const physical = await realpath(real);
  t.is(logicalCwd(link, physical), link);
  t.is(logicalCwd(dir.path, physical), physical, 'PWD of another directory (stale) is ignored');
  t.is(logicalCwd(undefined, physical), physical);
  t.is(logicalCwd('link', physical), physical, 'a relative PWD is ignored');
  t.is(logicalCwd(path.join(dir.path, 'gone'), physical), physical);
});
