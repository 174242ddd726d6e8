import type { TestFn } from 'ava';
import { Readable } from 'node:stream';
import { crc32c, crc32cBase64 } from '../../../core/checksum/crc32c.ts';
import type { Storage } from '../../../core/storage/types.ts';

/** Read a whole stream into a buffer. */
export async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function keysOf(storage: Storage, prefix: string, startAfter?: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const info of storage.list(prefix, { startAfter })) keys.push(info.key);
  return keys;
}

/** A source that yields `parts` then fails, like a WAL file read that hits an I/O error. */
function failingSource(parts: Buffer[]): Readable {
  let i = 0;
  return new Readable({
    read() {
      if (i < parts.length) this.push(parts[i++]);
      else this.destroy(new Error('source broke'));
    },
  });
}

/**
 * The Storage contract (see core/storage/types.ts). Every driver runs it:
 * `open()` returns a fresh, empty repository for each test.
 */
export function storageContract(test: TestFn, name: string, open: () => Promise<Storage>): void {
  test(`${name}: a written object reads back byte for byte with its metadata`, async (t) => {
    const s = await open();
    const body = Buffer.from('hello, wal\n'.repeat(1000));
    const info = await s.write('wal/000000010000000000000001', Readable.from([body]), { metadata: { 'gcwal-codec': 'none' } });
    t.is(info.size, body.length);
    t.is(info.crc32c, crc32cBase64(crc32c(body)));
    const st = await s.stat('wal/000000010000000000000001');
    t.truthy(st);
    t.is(st!.size, body.length);
    t.is(st!.crc32c, info.crc32c);
    t.deepEqual(st!.metadata, { 'gcwal-codec': 'none' });
    t.deepEqual(await collect(await s.read('wal/000000010000000000000001')), body);
  });

  test(`${name}: an empty object can be written and read`, async (t) => {
    const s = await open();
    const info = await s.write('empty', Readable.from([]));
    t.is(info.size, 0);
    t.is(info.crc32c, 'AAAAAA==');
    t.deepEqual(await collect(await s.read('empty')), Buffer.alloc(0));
  });

  test(`${name}: ranged reads return exactly the bytes asked for`, async (t) => {
    const s = await open();
    const body = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 251));
    await s.write('r', Readable.from([body]));
    t.deepEqual(await collect(await s.read('r', { start: 10, end: 19 })), body.subarray(10, 20));
    t.deepEqual(await collect(await s.read('r', { start: 4990 })), body.subarray(4990));
    t.deepEqual(await collect(await s.read('r', { start: 0, end: 0 })), body.subarray(0, 1));
  });

  test(`${name}: writing an existing key fails and keeps the original`, async (t) => {
    const s = await open();
    await s.write('k', Readable.from([Buffer.from('first')]));
    const err = await t.throwsAsync(s.write('k', Readable.from([Buffer.from('second')])));
    t.is((err as { code?: string }).code, 'already_exists');
    t.is((await collect(await s.read('k'))).toString(), 'first');
  });

  test(`${name}: concurrent creates of one key leave exactly one winner`, async (t) => {
    const s = await open();
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => s.write('race', Readable.from([Buffer.from(`writer ${i} `.repeat(1000))]))));
    const won = results.filter((r) => r.status === 'fulfilled');
    t.is(won.length, 1);
    for (const r of results) if (r.status === 'rejected') t.is((r.reason as { code?: string }).code, 'already_exists');
    const body = (await collect(await s.read('race'))).toString();
    t.regex(body, /^(writer \d ){1000}$/);
  });

  test(`${name}: a failing source leaves nothing behind`, async (t) => {
    const s = await open();
    await t.throwsAsync(s.write('broken', failingSource([Buffer.alloc(100_000, 1)])));
    t.is(await s.stat('broken'), undefined);
    t.deepEqual(await keysOf(s, ''), []);
    // and the key is still free
    await s.write('broken', Readable.from([Buffer.from('ok')]));
    t.is((await collect(await s.read('broken'))).toString(), 'ok');
  });

  test(`${name}: an aborted write leaves nothing behind`, async (t) => {
    const s = await open();
    const ac = new AbortController();
    const slow = new Readable({ read() {} });
    slow.push(Buffer.alloc(1000));
    const pending = s.write('aborted', slow, { signal: ac.signal });
    setTimeout(() => ac.abort(), 20);
    await t.throwsAsync(pending);
    t.is(await s.stat('aborted'), undefined);
  });

  test(`${name}: stat of a missing key is undefined and read of it is not_found`, async (t) => {
    const s = await open();
    t.is(await s.stat('wal/nothing'), undefined);
    const err = await t.throwsAsync(s.read('wal/nothing'));
    t.is((err as { code?: string }).code, 'not_found');
  });

  test(`${name}: list yields keys with the prefix in ascending order`, async (t) => {
    const s = await open();
    const keys = [
      'wal/000000010000000000000002',
      'wal/000000010000000000000001',
      'wal/00000002.history',
      'backups/base_1/backup.json',
      'backups/base_1/part_00000.tar',
      'a-b',
      'a/b',
      'wal2',
    ];
    for (const k of keys) await s.write(k, Readable.from([Buffer.from(k)]));
    t.deepEqual(await keysOf(s, ''), [...keys].sort());
    t.deepEqual(await keysOf(s, 'wal/'), ['wal/000000010000000000000001', 'wal/000000010000000000000002', 'wal/00000002.history']);
    t.deepEqual(await keysOf(s, 'wal/0000000100'), ['wal/000000010000000000000001', 'wal/000000010000000000000002']);
    t.deepEqual(await keysOf(s, 'wal'), ['wal/000000010000000000000001', 'wal/000000010000000000000002', 'wal/00000002.history', 'wal2']);
    t.deepEqual(await keysOf(s, 'wal/', 'wal/000000010000000000000001'), ['wal/000000010000000000000002', 'wal/00000002.history']);
    t.deepEqual(await keysOf(s, 'nothing/'), []);
  });

  test(`${name}: delete removes an object and is idempotent`, async (t) => {
    const s = await open();
    await s.write('d', Readable.from([Buffer.from('x')]));
    await s.delete('d');
    t.is(await s.stat('d'), undefined);
    await t.notThrowsAsync(s.delete('d'));
    await s.write('d', Readable.from([Buffer.from('y')]));
    t.is((await collect(await s.read('d'))).toString(), 'y');
  });

  test(`${name}: a large object streams through in bounded chunks`, async (t) => {
    const s = await open();
    const chunk = Buffer.alloc(1024 * 1024, 7);
    let n = 0;
    const src = new Readable({
      read() {
        this.push(n++ < 24 ? chunk : null);
      },
    });
    const info = await s.write('big', src);
    t.is(info.size, 24 * chunk.length);
    let total = 0;
    let maxChunk = 0;
    for await (const c of await s.read('big')) {
      total += (c as Buffer).length;
      maxChunk = Math.max(maxChunk, (c as Buffer).length);
    }
    t.is(total, 24 * chunk.length);
    t.true(maxChunk <= 8 * 1024 * 1024);
  });

  test(`${name}: write, stat and list report the same generation, a decimal number`, async (t) => {
    const s = await open();
    const info = await s.write('g/one', Readable.from([Buffer.from('1')]));
    t.regex(info.generation, /^[1-9]\d*$/);
    t.is((await s.stat('g/one'))?.generation, info.generation);
    const listed: string[] = [];
    for await (const i of s.list('g/')) listed.push(i.generation);
    t.deepEqual(listed, [info.generation]);
  });

  test(`${name}: a replace with the live generation succeeds and the generation grows`, async (t) => {
    const s = await open();
    const first = await s.write('cat', Readable.from([Buffer.from('version 1')]), { metadata: { 'gcwal-codec': 'none' } });
    const second = await s.write('cat', Readable.from([Buffer.from('version 2, longer')]), {
      ifGenerationMatch: first.generation,
      metadata: { 'gcwal-codec': 'none', v: '2' },
    });
    t.not(second.generation, first.generation);
    t.true(BigInt(second.generation) > BigInt(first.generation));
    t.is(second.size, 17);
    const st = await s.stat('cat');
    t.is(st?.generation, second.generation);
    t.is(st?.size, 17);
    t.is(st?.crc32c, crc32cBase64(crc32c(Buffer.from('version 2, longer'))));
    t.deepEqual(st?.metadata, { 'gcwal-codec': 'none', v: '2' });
    t.is((await collect(await s.read('cat'))).toString(), 'version 2, longer');
    // Identical bytes are still a new generation.
    const third = await s.write('cat', Readable.from([Buffer.from('version 2, longer')]), { ifGenerationMatch: second.generation });
    t.true(BigInt(third.generation) > BigInt(second.generation));
  });

  test(`${name}: a replace with a stale generation fails and leaves the object intact`, async (t) => {
    const s = await open();
    const first = await s.write('cat', Readable.from([Buffer.from('one')]));
    const second = await s.write('cat', Readable.from([Buffer.from('two')]), { ifGenerationMatch: first.generation });
    const err = await t.throwsAsync(s.write('cat', Readable.from([Buffer.from('three')]), { ifGenerationMatch: first.generation }));
    t.is((err as { code?: string }).code, 'precondition_failed');
    t.is((err as { exitCode?: number }).exitCode, 5);
    t.regex(err!.message, /^object \S*cat changed: expected generation \d+/);
    t.is((await s.stat('cat'))?.generation, second.generation);
    t.is((await collect(await s.read('cat'))).toString(), 'two');
  });

  test(`${name}: a replace of a missing object fails`, async (t) => {
    const s = await open();
    const err = await t.throwsAsync(s.write('ghost', Readable.from([Buffer.from('x')]), { ifGenerationMatch: '1234' }));
    t.is((err as { code?: string }).code, 'precondition_failed');
    t.is(await s.stat('ghost'), undefined);
  });

  test(`${name}: generation '0' is create-only, as no precondition is`, async (t) => {
    const s = await open();
    const info = await s.write('c', Readable.from([Buffer.from('first')]), { ifGenerationMatch: '0' });
    for (const ifGenerationMatch of ['0', undefined]) {
      const err = await t.throwsAsync(s.write('c', Readable.from([Buffer.from('second')]), { ifGenerationMatch }));
      t.is((err as { code?: string }).code, 'already_exists');
    }
    t.is((await s.stat('c'))?.generation, info.generation);
    t.is((await collect(await s.read('c'))).toString(), 'first');
  });

  test(`${name}: a replace whose source fails leaves the object as it was`, async (t) => {
    const s = await open();
    const first = await s.write('cat', Readable.from([Buffer.from('intact')]));
    await t.throwsAsync(s.write('cat', failingSource([Buffer.alloc(100_000, 1)]), { ifGenerationMatch: first.generation }));
    t.is((await s.stat('cat'))?.generation, first.generation);
    t.is((await collect(await s.read('cat'))).toString(), 'intact');
    // and the generation is still the live one
    await t.notThrowsAsync(s.write('cat', Readable.from([Buffer.from('next')]), { ifGenerationMatch: first.generation }));
  });

  test(`${name}: a delete with the live generation removes the object`, async (t) => {
    const s = await open();
    const info = await s.write('d', Readable.from([Buffer.from('x')]));
    await s.delete('d', { ifGenerationMatch: info.generation });
    t.is(await s.stat('d'), undefined);
    // missing is still success
    await t.notThrowsAsync(s.delete('d', { ifGenerationMatch: info.generation }));
  });

  test(`${name}: a delete with a stale generation fails and keeps the object`, async (t) => {
    const s = await open();
    const first = await s.write('d', Readable.from([Buffer.from('x')]));
    const second = await s.write('d', Readable.from([Buffer.from('y')]), { ifGenerationMatch: first.generation });
    const err = await t.throwsAsync(s.delete('d', { ifGenerationMatch: first.generation }));
    t.is((err as { code?: string }).code, 'precondition_failed');
    t.is((await s.stat('d'))?.generation, second.generation);
    t.is((await collect(await s.read('d'))).toString(), 'y');
  });

  test(`${name}: an object deleted and created again has a newer generation`, async (t) => {
    const s = await open();
    const first = await s.write('again', Readable.from([Buffer.from('x')]));
    await s.delete('again');
    const second = await s.write('again', Readable.from([Buffer.from('x')]));
    t.true(BigInt(second.generation) > BigInt(first.generation));
  });

  test(`${name}: of concurrent replaces from one generation exactly one wins`, async (t) => {
    const s = await open();
    const base = await s.write('race', Readable.from([Buffer.from('base')]));
    const n = 8;
    const results = await Promise.allSettled(
      Array.from({ length: n }, (_, i) => s.write('race', Readable.from([Buffer.from(`writer ${i} `.repeat(1000))]), { ifGenerationMatch: base.generation })),
    );
    const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [{ i, info: r.value }] : []));
    t.is(won.length, 1);
    for (const r of results) if (r.status === 'rejected') t.is((r.reason as { code?: string }).code, 'precondition_failed');
    t.is((await collect(await s.read('race'))).toString(), `writer ${won[0].i} `.repeat(1000));
    t.is((await s.stat('race'))?.generation, won[0].info.generation);
  });

  test(`${name}: a generation that is not a decimal number is refused`, async (t) => {
    const s = await open();
    await t.throwsAsync(s.write('bad', Readable.from([Buffer.from('x')]), { ifGenerationMatch: 'abc' }), { message: /invalid generation/ });
    await t.throwsAsync(s.delete('bad', { ifGenerationMatch: '-1' }), { message: /invalid generation/ });
  });
}
