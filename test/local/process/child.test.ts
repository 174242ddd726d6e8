/**
 * Process groups: stop() ends the leader and everything it started, even
 * processes that ignore SIGTERM, and readiness waits fail fast with the
 * child's output.
 */
import test from 'ava';
import { liveGroupMembers, spawnGroup, tailOf, waitUntilReady } from '../../../local/process/child.ts';

const env = { PATH: '/usr/bin:/bin' };

test('stop() ends the leader and its background children', async (t) => {
  const child = await spawnGroup({ what: 'a shell', command: 'sh', args: ['-c', 'sleep 300 & sleep 300 & echo started; wait'], env });
  await waitUntilReady('a shell', { child, timeoutMs: 10_000, probe: async () => child.logs().includes('started') });
  t.is((await liveGroupMembers(child.pid)).length, 3);
  await child.stop();
  t.deepEqual(await liveGroupMembers(child.pid), []);
  t.is(child.exitStatus()?.signal, 'SIGTERM');
});

test('processes that ignore SIGTERM are killed after the grace period', async (t) => {
  const child = await spawnGroup({ what: 'a stubborn shell', command: 'sh', args: ['-c', 'trap "" TERM; sleep 300 & echo started; wait'], env });
  await waitUntilReady('a stubborn shell', { child, timeoutMs: 10_000, probe: async () => child.logs().includes('started') });
  const started = Date.now();
  await child.stop(300);
  t.true(Date.now() - started >= 300);
  t.deepEqual(await liveGroupMembers(child.pid), []);
  t.is(child.exitStatus()?.signal, 'SIGKILL');
});

test('a child that exits before it is ready fails the wait at once with its output', async (t) => {
  const child = await spawnGroup({ what: 'a failing shell', command: 'sh', args: ['-c', 'echo "cannot load the module" >&2; exit 3'], env });
  const started = Date.now();
  await t.throwsAsync(waitUntilReady('a failing shell', { child, timeoutMs: 60_000, probe: async () => false }), {
    message: 'a failing shell exited with code 3 before it was ready; its last output:\ncannot load the module',
  });
  t.true(Date.now() - started < 30_000, 'the wait did not run to its 60 s timeout');
});

test('a wait that times out or meets a fatal condition says so with the output', async (t) => {
  const child = await spawnGroup({ what: 'a quiet shell', command: 'sh', args: ['-c', 'echo "still loading"; sleep 300'], env });
  t.teardown(() => child.stop());
  await t.throwsAsync(
    waitUntilReady('a quiet shell', {
      child,
      timeoutMs: 300,
      probe: async () => {
        throw new Error('refused');
      },
    }),
    {
      message: /^a quiet shell was not ready after 0.3 s .*; its last output:\nstill loading$/,
    },
  );
  await t.throwsAsync(waitUntilReady('a quiet shell', { child, timeoutMs: 10_000, probe: async () => false, fatal: () => new Error('port taken') }), {
    message: 'port taken',
  });
});

test('the tail is the last lines without the trailing newline', (t) => {
  t.is(tailOf('a\nb\nc\n', 2), 'b\nc');
  t.is(tailOf('only', 5), 'only');
});
