/**
 * The agent's identity holds only roles/storage.objectCreator and
 * roles/storage.objectViewer: it can archive and read, never delete or
 * overwrite, and failures are auth errors that say so.
 */
import test from 'ava';
import { Readable } from 'node:stream';
import { GcsStorage } from '../../../../core/storage/gcs/storage.ts';
import { startLocalStack, type LocalStack } from '../../../../local/stack.ts';
import { collect } from '../contract.ts';
import { adoptStackEnv } from '../../../helpers/stack-env.ts';

let stack: LocalStack;
test.before(async () => {
  stack = await startLocalStack({ retentionPeriodSeconds: 3600 });
  adoptStackEnv(stack);
});
test.after.always(async () => {
  await stack?.close();
});

test.serial('a create-and-read identity can write and read under a retention policy but not delete', async (t) => {
  const s = new GcsStorage(`gs://${stack.bucket}/perm`, { endpoint: stack.emulator.url });
  await s.write('k', Readable.from([Buffer.from('v')]));
  t.is((await collect(await s.read('k'))).toString(), 'v');
  const err = await t.throwsAsync(s.delete('k'));
  t.is((err as { code?: string }).code, 'auth');
  t.regex(err!.message, /delete gs:\/\/gcwal-local\/perm\/k was refused as gcwal-agent@gcwal-local\.iam\.gserviceaccount\.com: permission denied/);
  t.regex((err as unknown as { hint: string }).hint, /storage\.objects\.delete/);
  const again = await t.throwsAsync(s.write('k', Readable.from([Buffer.from('other')])));
  t.is((again as { code?: string }).code, 'already_exists');
});

test.serial('a revoked identity gets auth errors, never not-found', async (t) => {
  const s = new GcsStorage(`gs://${stack.bucket}/revoked`, { endpoint: stack.emulator.url, retries: 0 });
  await s.write('present', Readable.from([Buffer.from('v')]));
  stack.authority.revoke(stack.agentIdentity);
  t.teardown(() => stack.authority.restore(stack.agentIdentity));
  for (const attempt of [() => s.stat('absent'), () => s.read('absent'), () => s.stat('present'), () => s.write('new', Readable.from([Buffer.from('x')]))]) {
    const err = await t.throwsAsync(attempt());
    t.is((err as { code?: string }).code, 'auth', err?.message);
  }
});
