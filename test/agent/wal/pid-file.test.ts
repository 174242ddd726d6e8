import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { acquirePidFile, releasePidFile, runsCommand } from '../../../agent/wal/pid-file.ts';
import { makeTempDir } from '../../../local/testkit/tmp.ts';

const COMMAND = 'wal-archiver';

/** A live process with COMMAND among its arguments, as the archiver has. */
function holder() {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)', COMMAND], { stdio: 'ignore' });
  return child;
}

test('a pid file held by a live process of the command is not taken; a dead or foreign holder is replaced', async (t) => {
  const dir = await makeTempDir('pid-file');
  t.teardown(dir.cleanup);
  const file = path.join(dir.path, 'archiver.pid');
  const live = holder();
  t.teardown(() => live.kill('SIGKILL'));
  await new Promise((resolve) => live.once('spawn', resolve));
  t.true(runsCommand(live.pid!, COMMAND));
  await writeFile(file, `${live.pid}\n`);
  t.false(await acquirePidFile(file, COMMAND));
  t.is(await readFile(file, 'utf8'), `${live.pid}\n`);

  // Killed: its pid file is taken over.
  live.kill('SIGKILL');
  await new Promise((resolve) => live.once('exit', resolve));
  t.true(await acquirePidFile(file, COMMAND));
  t.is(await readFile(file, 'utf8'), `${process.pid}\n`);

  // A recycled pid (a live process that runs something else) does not hold it either.
  await writeFile(file, `${process.ppid}\n`);
  t.false(runsCommand(process.ppid, COMMAND));
  t.true(await acquirePidFile(file, COMMAND));
  await releasePidFile(file);
  await t.throwsAsync(readFile(file, 'utf8'));
});
