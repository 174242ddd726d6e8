import test from 'ava';
import { freePort, onFreePort, PortTakenError } from '../../../local/process/port.ts';

test('a free port is a loopback port nobody holds', async (t) => {
  const port = await freePort();
  t.true(port > 0 && port < 65536);
});

test('an attempt whose port was taken is retried on another port, up to three times', async (t) => {
  const tried: number[] = [];
  const result = await onFreePort(undefined, async (port) => {
    tried.push(port);
    if (tried.length < 3) throw new PortTakenError(port, 'EADDRINUSE');
    return 'started';
  });
  t.is(result, 'started');
  t.is(tried.length, 3);

  const always: number[] = [];
  await t.throwsAsync(
    onFreePort(undefined, async (port) => {
      always.push(port);
      throw new PortTakenError(port, 'EADDRINUSE');
    }),
    { instanceOf: PortTakenError },
  );
  t.is(always.length, 3);
});

test('other failures and a port the caller chose are not retried', async (t) => {
  let calls = 0;
  await t.throwsAsync(
    onFreePort(undefined, async () => {
      calls++;
      throw new Error('broken');
    }),
    { message: 'broken' },
  );
  t.is(calls, 1);

  const fixed: number[] = [];
  await t.throwsAsync(
    onFreePort(4321, async (port) => {
      fixed.push(port);
      throw new PortTakenError(port, 'EADDRINUSE');
    }),
    { message: /^port 4321 was taken before the server could bind it: EADDRINUSE$/ },
  );
  t.deepEqual(fixed, [4321]);
});
