/**
 * The demo's pipeline helpers (local/demo-pipeline.ts) on their failure
 * paths, which the demo itself never takes when all is well: without gcloud
 * the stack starts without the pipeline and says why; a corrupt object or an
 * empty archive fails the wait for validation; a corruption alert for another
 * generation is not taken for the one awaited. The demo's success path is in
 * demo.test.ts.
 */
import test from 'ava';
import { UsageError } from '../../core/errors.ts';
import { corruptionAlert, flipBytes, startDemoStack, waitUntilValidated } from '../../local/demo-pipeline.ts';
import { startLocalStack, type LocalStack } from '../../local/stack.ts';
import { readObject, writeObject } from '../../local/testkit/gcs-admin.ts';

const PATH = process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin';

test('without gcloud the demo stack starts without the pipeline and says why', async (t) => {
  const { stack, skipped } = await startDemoStack({ bucket: 'demo-skip', prefix: 'demo-cluster' }, '/nonexistent');
  try {
    t.is(stack.pipeline, undefined);
    t.false('PUBSUB_EMULATOR_HOST' in stack.env);
    t.is(stack.env.GCWAL_REPO, 'gs://demo-skip/demo-cluster');
    t.regex(
      skipped ?? '',
      /^cannot run gcloud for the pub\/sub emulator: it is not on PATH \(install the Google Cloud CLI with its pubsub-emulator component and a Java runtime\)$/,
    );
    await t.throwsAsync(waitUntilValidated(stack, 'demo-cluster/', 1000), { message: /without the pipeline/ });
  } finally {
    await stack.close();
  }
});

test('any other failure to start the demo stack is thrown, not skipped', async (t) => {
  await t.throwsAsync(startDemoStack({ bucket: 'Not_A_Bucket' }, '/nonexistent'), { instanceOf: UsageError, message: /invalid bucket name/ });
});

test('flipBytes inverts 16 bytes in the middle of an object and keeps its content type and metadata', async (t) => {
  const stack = await startLocalStack({ bucket: 'demo-flip' });
  try {
    const original = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
    const written = await writeObject(stack, 'wal/x', original, { contentType: 'application/x-lzop', metadata: { 'gcwal-crc32c': 'abc' } });
    const flipped = await flipBytes(stack, 'wal/x');
    t.not(flipped.generation, written.generation);
    const { body, resource } = await readObject(stack, 'wal/x');
    t.is(body.length, original.length);
    const changed = [...body.keys()].filter((i) => body[i] !== original[i]);
    t.deepEqual(
      changed,
      Array.from({ length: 16 }, (_, i) => 500 + i),
    );
    t.true(changed.every((i) => body[i] === (original[i] ^ 0xff)));
    t.like(resource, { contentType: 'application/x-lzop', metadata: { 'gcwal-crc32c': 'abc' } });
  } finally {
    await stack.close();
  }
});

test.serial('with the pipeline, an empty archive and a corrupt object each fail the wait, and only the awaited generation counts as its alert', async (t) => {
  t.timeout(180_000);
  let stack: LocalStack | undefined;
  try {
    const started = await startDemoStack({ bucket: 'demo-fail', prefix: 'demo-cluster' }, PATH);
    stack = started.stack;
    t.is(started.skipped, undefined, 'gcloud is needed for this test');
    await t.throwsAsync(waitUntilValidated(stack, 'demo-cluster/', 1000), {
      message: /^the pipeline did not validate the archive within 1 s \(nothing was archived\)/,
    });

    const key = 'wal/000000010000000000000001';
    const first = await writeObject(stack, `demo-cluster/${key}`, Buffer.from('not a wal segment'));
    await t.throwsAsync(waitUntilValidated(stack, 'demo-cluster/', 60_000), { message: /^the pipeline found wal\/000000010000000000000001 corrupt: / });
    const alert = await corruptionAlert(stack, key, first.generation, 60_000);
    t.like(alert, { kind: 'corrupt-object', severity: 'CRITICAL', status: 'open', details: { key, generation: first.generation } });
    await t.throwsAsync(corruptionAlert(stack, key, `${first.generation}0`, 2000));
  } finally {
    await stack?.close();
  }
});
