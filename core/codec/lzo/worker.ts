/**
 * The worker thread of the parallel lzop encoder (parallel.ts). For each
 * job it claims blocks from the job's shared counter, the same counter the
 * main thread claims from, encodes each exactly as the streaming compressor
 * would and sends it back as `{ id, index, block }` (the block's own
 * ArrayBuffer, transferred). It stops when the counter passes the last block;
 * the main thread assembles the blocks in order. Runs as a Worker only.
 */
import { parentPort } from 'node:worker_threads';
import { loadLzoBlockCompressor } from './native.ts';
import { LzopBlockEncoder } from './blocks.ts';
import { LZOP_BLOCK_SIZE } from './format.ts';
import type { LzopJob } from './parallel.ts';

const port = parentPort;
if (!port) throw new Error('core/codec/lzo/worker.ts runs as a worker thread only');
const encoder = new LzopBlockEncoder(loadLzoBlockCompressor());

port.on('message', (job: LzopJob) => {
  const data = Buffer.from(job.data, job.offset, job.length);
  const claims = new Int32Array(job.claims);
  for (;;) {
    const index = Atomics.add(claims, 0, 1);
    if (index >= job.blocks) break;
    const block = encoder.encode(data.subarray(index * LZOP_BLOCK_SIZE, (index + 1) * LZOP_BLOCK_SIZE));
    const out = new ArrayBuffer(block.length);
    Buffer.from(out).set(block);
    port.postMessage({ id: job.id, index, block: out }, [out]);
  }
});
// The native library is loaded and jobs are listened for.
port.postMessage({ ready: true });
