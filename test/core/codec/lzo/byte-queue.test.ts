import test from 'ava';
import { ByteQueue } from '../../../../core/codec/lzo/byte-queue.ts';

function queueOf(...chunks: string[]): ByteQueue {
  const queue = new ByteQueue();
  for (const chunk of chunks) queue.push(Buffer.from(chunk));
  return queue;
}

test('a byte queue hands out bytes in order however they were chunked', (t) => {
  const queue = queueOf('ab', '', 'cde', 'f', 'ghij');
  t.is(queue.length, 10);
  t.is(queue.take(1).toString(), 'a');
  t.is(queue.peek(4).toString(), 'bcde');
  t.is(queue.take(5).toString(), 'bcdef');
  queue.skip(2);
  t.is(queue.length, 2);
  t.is(queue.take(2).toString(), 'ij');
  t.is(queue.length, 0);
  t.is(queue.peek(0).length, 0);
});

test('a byte queue does not copy a request that fits in one chunk', (t) => {
  const chunk = Buffer.from('0123456789');
  const queue = new ByteQueue();
  queue.push(chunk);
  queue.skip(2);
  t.is(queue.peek(5).buffer, chunk.buffer);
  t.is(queue.peek(5).byteOffset, chunk.byteOffset + 2);
});

test('a byte queue keeps the bytes a peek merged', (t) => {
  const queue = queueOf('a', 'b', 'c', 'd');
  t.is(queue.peek(3).toString(), 'abc');
  t.is(queue.peek(4).toString(), 'abcd');
  t.is(queue.take(4).toString(), 'abcd');
});

test('a byte queue refuses to hand out more than it holds', (t) => {
  const queue = queueOf('abc');
  t.throws(() => queue.peek(4), { instanceOf: RangeError });
  t.throws(() => queue.take(4), { instanceOf: RangeError });
  t.throws(() => queue.skip(4), { instanceOf: RangeError });
  t.is(queue.length, 3);
});
