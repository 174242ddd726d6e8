/**
 * The lzo helper thread as it ships: dist/lzop-worker.cjs, installed beside
 * the bundles with only the runtime packages, started as a Worker, answers
 * ready and encodes a job's blocks as the streaming compressor would.
 */
import test from 'ava';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { LZOP_BLOCK_SIZE } from '../../../../core/codec/lzo/format.ts';
import { lzoCodec } from '../../../../core/codec/lzo/lzop.ts';
import { lzopStreamEnd, lzopStreamHeader } from '../../../../core/codec/lzo/blocks.ts';
import { installAgent } from '../../../../local/testkit/install.ts';

test('the installed worker script loads from its install directory and encodes every block of a job exactly', async (t) => {
  const agent = await installAgent();
  t.teardown(() => agent.cleanup());
  const worker = new Worker(path.join(agent.dir, 'lzop-worker.cjs'));
  t.teardown(() => worker.terminate());
  const size = 3 * LZOP_BLOCK_SIZE + 1000;
  const data = Buffer.from(new SharedArrayBuffer(size));
  for (let i = 0; i < size; i += 13) data.write(`record ${i % 977};`, i);
  const blocks = Math.ceil(size / LZOP_BLOCK_SIZE);
  const received = new Map<number, Buffer>();
  await new Promise<void>((resolve, reject) => {
    worker.on('error', reject);
    worker.on('message', (message: { ready?: true; index?: number; block?: ArrayBuffer }) => {
      if (message.ready) {
        worker.postMessage({ id: 7, data: data.buffer, offset: 0, length: size, claims: new SharedArrayBuffer(4), blocks });
        return;
      }
      received.set(message.index!, Buffer.from(message.block!));
      if (received.size === blocks) resolve();
    });
  });
  const assembled = Buffer.concat([lzopStreamHeader(), ...Array.from({ length: blocks }, (_, i) => received.get(i)!), lzopStreamEnd()]);
  const chunks: Buffer[] = [];
  for await (const chunk of Readable.from([data]).pipe(lzoCodec().compressor())) chunks.push(chunk as Buffer);
  t.true(assembled.equals(Buffer.concat(chunks)));
});
