/**
 * The wire format, request by request, with a plain HTTP client: the
 * multipart dialects real clients send, resumable sessions (308s, status
 * queries, re-sent and missing bytes, dropped connections), ranges, download
 * headers, checksum claims, path aliases and error bodies.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { crc32c, crc32cBase64 } from '../../../core/checksum/crc32c.ts';
import { bytes, raw, startTestEmulator } from './harness.ts';

const md5 = (data: Buffer | string) => createHash('md5').update(data).digest('base64');
const crc = (data: Buffer | string) => crc32cBase64(crc32c(Buffer.from(data)));

/** Split a buffer into pieces of `size` bytes (a chunked body arriving in awkward places). */
function pieces(data: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) out.push(data.subarray(i, i + size));
  return out;
}

async function ready(t: Parameters<typeof startTestEmulator>[0]) {
  const env = await startTestEmulator(t);
  await env.emu.createBucket('bkt');
  return env;
}

const dialects = [
  {
    title: "the Node client's (CRLF, unquoted boundary, name in the query)",
    contentType: 'multipart/related; boundary=abc123',
    query: '&name=dir%2Fa.txt',
    body: (media: Buffer) =>
      Buffer.concat([
        Buffer.from(
          '--abc123\r\nContent-Type: application/json\r\n\r\n{"contentType":"text/plain","metadata":{"k":"v"}}\r\n--abc123\r\nContent-Type: text/plain\r\n\r\n',
        ),
        media,
        Buffer.from('\r\n--abc123--'),
      ]),
  },
  {
    title: "gcloud's (bare LF, single-quoted boundary, name in the JSON part, MIME headers)",
    contentType: "multipart/related; boundary='===============7330845974216740156=='",
    query: '',
    body: (media: Buffer) =>
      Buffer.concat([
        Buffer.from(
          '--===============7330845974216740156==\nContent-Type: application/json\nMIME-Version: 1.0\n\n{"name":"dir/a.txt","contentType":"text/plain","metadata":{"k":"v"}}\n--===============7330845974216740156==\nContent-Type: text/plain\nMIME-Version: 1.0\nContent-Transfer-Encoding: binary\n\n',
        ),
        media,
        Buffer.from('\n--===============7330845974216740156==--\n'),
      ]),
  },
  {
    title: 'a double-quoted boundary with a preamble and part without headers',
    contentType: 'multipart/related; boundary="b o u n d"',
    query: '&name=dir%2Fa.txt',
    body: (media: Buffer) =>
      Buffer.concat([
        Buffer.from('preamble to ignore\r\n--b o u n d\r\n\r\n{"contentType":"text/plain","metadata":{"k":"v"}}\r\n--b o u n d\r\n\r\n'),
        media,
        Buffer.from('\r\n--b o u n d--\r\nepilogue'),
      ]),
  },
];

for (const dialect of dialects) {
  for (const split of [1, 7, 65536]) {
    test(`a multipart upload in ${dialect.title} arriving in ${split}-byte pieces stores exactly the media bytes`, async (t) => {
      const { emu } = await ready(t);
      // Media full of line breaks and dashes, to tempt a careless boundary search.
      const media = Buffer.from('line one\r\n--abc12\n--\r\n-- not a boundary\r\n\r\nlast line without newline');
      const response = await raw(`${emu.url}/upload/storage/v1/b/bkt/o?uploadType=multipart${dialect.query}`, {
        method: 'POST',
        headers: { 'Content-Type': dialect.contentType },
        body: pieces(dialect.body(media), split),
      });
      t.is(response.status, 200, response.body.toString());
      const object = response.json();
      t.is(object.name, 'dir/a.txt');
      t.is(object.size, String(media.length));
      t.is(object.crc32c, crc(media));
      t.is(object.md5Hash, md5(media));
      t.is(object.contentType, 'text/plain');
      t.deepEqual(object.metadata, { k: 'v' });
      t.deepEqual((await raw(`${emu.url}/storage/v1/b/bkt/o/dir%2Fa.txt?alt=media`)).body, media);
    });
  }
}

test('a multipart body that ends before its closing boundary is rejected and creates nothing', async (t) => {
  const { emu, dir } = await ready(t);
  const response = await raw(`${emu.url}/upload/storage/v1/b/bkt/o?uploadType=multipart&name=cut`, {
    method: 'POST',
    headers: { 'Content-Type': 'multipart/related; boundary=xyz' },
    body: [Buffer.from('--xyz\r\nContent-Type: application/json\r\n\r\n{}\r\n--xyz\r\n\r\npartial media')],
  });
  t.is(response.status, 400);
  t.is((await raw(`${emu.url}/storage/v1/b/bkt/o/cut`)).status, 404);
  t.deepEqual(await readdir(path.join(dir, 'tmp')), [], 'the partial upload is not left behind');
});

test('checksums claimed in x-goog-hash or the metadata are verified: a mismatch is 400 and stores nothing', async (t) => {
  const { emu } = await ready(t);
  const data = 'the bytes';
  const post = (name: string, hash: string) =>
    raw(`${emu.url}/upload/storage/v1/b/bkt/o?uploadType=media&name=${name}`, { method: 'POST', headers: { 'x-goog-hash': hash }, body: data });
  t.is((await post('good', `crc32c=${crc(data)},md5=${md5(data)}`)).status, 200);
  const badCrc = await post('bad-crc', `crc32c=${crc('other')}`);
  t.is(badCrc.status, 400);
  t.regex(badCrc.json().error.message, /CRC32C/);
  t.is((await post('bad-md5', `md5=${md5('other')}`)).status, 400);
  const multipart = await raw(`${emu.url}/upload/storage/v1/b/bkt/o?uploadType=multipart&name=bad-json`, {
    method: 'POST',
    headers: { 'Content-Type': 'multipart/related; boundary=q' },
    body: `--q\r\nContent-Type: application/json\r\n\r\n{"crc32c":"${crc('other')}"}\r\n--q\r\n\r\n${data}\r\n--q--`,
  });
  t.is(multipart.status, 400);
  for (const name of ['bad-crc', 'bad-md5', 'bad-json']) t.is((await raw(`${emu.url}/storage/v1/b/bkt/o/${name}`)).status, 404);
});

test('a resumable session acknowledges chunks with 308, answers status queries, skips re-sent bytes and refuses gaps', async (t) => {
  const { emu } = await ready(t);
  const port = new URL(emu.url).port;
  const start = await raw(`${emu.url}/upload/storage/v1/b/bkt/o?uploadType=resumable&name=obj`, {
    method: 'POST',
    headers: { Host: `localhost:${port}`, 'Content-Type': 'application/json', 'X-Upload-Content-Type': 'application/x-test' },
    body: '{"metadata":{"a":"b"}}',
  });
  t.is(start.status, 200);
  const location = start.headers.location as string;
  // Absolute, from the Host the client used, with the upload id pgBackRest reads from the header.
  t.true(location.startsWith(`http://localhost:${port}/upload/storage/v1/b/bkt/o?`), location);
  t.is(new URL(location).searchParams.get('upload_id'), start.headers['x-guploader-uploadid'] as string);
  const session = location.replace('localhost', '127.0.0.1');
  const put = (range: string, body = '') =>
    raw(session, { method: 'PUT', headers: { 'Content-Range': range, 'Content-Length': Buffer.byteLength(body) }, body });
  const data = '0123456789abcdefghij';

  const empty = await put('bytes */*');
  t.is(empty.status, 308);
  t.is(empty.headers.range, undefined);
  t.is((await put('bytes 0-9/*', data.slice(0, 10))).headers.range, 'bytes=0-9');
  const overlap = await put('bytes 5-14/*', data.slice(5, 15));
  t.is(overlap.status, 308);
  t.is(overlap.headers.range, 'bytes=0-14');
  t.is((await put('bytes */*')).headers.range, 'bytes=0-14');
  t.is((await put('bytes 20-29/*', 'zzzzzzzzzz')).status, 400);
  t.is((await raw(`${emu.url}/storage/v1/b/bkt/o/obj`)).status, 404, 'nothing is visible before the last chunk');
  const done = await put('bytes 15-19/20', data.slice(15));
  t.is(done.status, 200);
  t.is(done.json().size, '20');
  t.is(done.json().contentType, 'application/x-test');
  t.deepEqual(done.json().metadata, { a: 'b' });
  t.is((await put('bytes */*')).status, 200, 'a status query after completion returns the object');
  t.is((await raw(`${emu.url}/storage/v1/b/bkt/o/obj?alt=media`)).body.toString(), data);
});

test('a resumable upload in one request with bytes 0-*/* and a chunked body completes', async (t) => {
  const { emu } = await ready(t);
  const start = await raw(`${emu.url}/upload/storage/v1/b/bkt/o?uploadType=resumable&name=one`, { method: 'POST' });
  const data = bytes(300_000, 4);
  const done = await raw(start.headers.location as string, { method: 'PUT', headers: { 'Content-Range': 'bytes 0-*/*' }, body: pieces(data, 10_000) });
  t.is(done.status, 200);
  t.is(done.json().crc32c, crc(data));
});

test('a session whose connection drops mid-chunk is not finalised; the client resumes from what was persisted', async (t) => {
  const { emu } = await ready(t);
  const start = await raw(`${emu.url}/upload/storage/v1/b/bkt/o?uploadType=resumable&name=dropped`, { method: 'POST' });
  const session = new URL(start.headers.location as string);
  const data = bytes(100_000, 6);
  // Declare the whole object, send 60 000 bytes, then vanish.
  await new Promise<void>((resolve, reject) => {
    const socket = connect(Number(session.port), session.hostname, () => {
      socket.write(
        `PUT ${session.pathname}${session.search} HTTP/1.1\r\nHost: ${session.host}\r\nContent-Length: ${data.length}\r\nContent-Range: bytes 0-${data.length - 1}/${data.length}\r\n\r\n`,
      );
      socket.write(data.subarray(0, 60_000), () => setTimeout(() => (socket.destroy(), resolve()), 200));
    });
    socket.on('error', reject);
  });
  await new Promise((r) => setTimeout(r, 100));
  t.is((await raw(`${emu.url}/storage/v1/b/bkt/o/dropped`)).status, 404);
  const status = await raw(session.href, { method: 'PUT', headers: { 'Content-Range': `bytes */${data.length}`, 'Content-Length': 0 } });
  t.is(status.status, 308);
  const persisted = Number(/^bytes=0-(\d+)$/.exec(status.headers.range as string)![1]) + 1;
  t.true(persisted > 0 && persisted <= 60_000, String(persisted));
  const rest = await raw(session.href, {
    method: 'PUT',
    headers: { 'Content-Range': `bytes ${persisted}-${data.length - 1}/${data.length}` },
    body: data.subarray(persisted),
  });
  t.is(rest.status, 200);
  t.deepEqual((await raw(`${emu.url}/storage/v1/b/bkt/o/dropped?alt=media`)).body, data);
});

test('an unknown session is 404 and a cancelled one is gone', async (t) => {
  const { emu } = await ready(t);
  t.is((await raw(`${emu.url}/upload/storage/v1/b/bkt/o?uploadType=resumable&upload_id=nope`, { method: 'PUT', body: 'x' })).status, 404);
  const start = await raw(`${emu.url}/upload/storage/v1/b/bkt/o?uploadType=resumable&name=c`, { method: 'POST' });
  t.is((await raw(start.headers.location as string, { method: 'DELETE' })).status, 499);
  t.is((await raw(start.headers.location as string, { method: 'PUT', body: 'x' })).status, 404);
});

const ranges: { header: string; status: number; slice?: [number, number]; contentRange: string }[] = [
  { header: 'bytes=10-19', status: 206, slice: [10, 20], contentRange: 'bytes 10-19/1000' },
  { header: 'bytes=990-', status: 206, slice: [990, 1000], contentRange: 'bytes 990-999/1000' },
  { header: 'bytes=-5', status: 206, slice: [995, 1000], contentRange: 'bytes 995-999/1000' },
  { header: 'bytes=900-5000', status: 206, slice: [900, 1000], contentRange: 'bytes 900-999/1000' },
  { header: 'bytes=1000-', status: 416, contentRange: 'bytes */1000' },
  { header: 'bytes=-0', status: 416, contentRange: 'bytes */1000' },
];

for (const { header, status, slice, contentRange } of ranges) {
  test(`Range: ${header} on a 1000-byte object gives ${status} with Content-Range ${contentRange}`, async (t) => {
    const { emu } = await ready(t);
    const data = bytes(1000, 2);
    await raw(`${emu.url}/upload/storage/v1/b/bkt/o?uploadType=media&name=r`, { method: 'POST', body: data });
    for (const url of [`${emu.url}/b/bkt/o/r?alt=media`, `${emu.url}/download/storage/v1/b/bkt/o/r`]) {
      const response = await raw(url, { headers: { Range: header } });
      t.is(response.status, status);
      t.is(response.headers['content-range'], contentRange);
      if (slice) t.deepEqual(response.body, data.subarray(...slice));
      else t.is(response.json().error.code, 416);
    }
  });
}

test('a download carries the headers clients verify with', async (t) => {
  const { emu } = await ready(t);
  const data = 'checked bytes';
  const object = (
    await raw(`${emu.url}/upload/storage/v1/b/bkt/o?uploadType=media&name=h`, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: data })
  ).json();
  const response = await raw(`${emu.url}/storage/v1/b/bkt/o/h?alt=media`);
  t.is(response.headers['x-goog-hash'], `crc32c=${crc(data)},md5=${md5(data)}`);
  t.is(response.headers['x-goog-stored-content-encoding'], 'identity');
  t.is(response.headers['x-goog-stored-content-length'], String(data.length));
  t.is(response.headers['x-goog-generation'], object.generation);
  t.is(response.headers['x-goog-metageneration'], '1');
  t.is(response.headers.etag, object.etag);
  t.is(response.headers['content-type'], 'text/plain');
  const head = await raw(`${emu.url}/storage/v1/b/bkt/o/h?alt=media`, { method: 'HEAD' });
  t.is(head.status, 200);
  t.is(head.headers['content-length'], String(data.length));
});

test('self links point at the URL the client used and every path alias reaches the same object', async (t) => {
  const { emu } = await ready(t);
  const name = 'odd name/with ü, #hash & ?query+plus';
  const enc = encodeURIComponent(name);
  const created = await raw(`${emu.url}/storage/v1/upload/storage/v1/b/bkt/o?uploadType=media&name=${enc}`, { method: 'POST', body: 'odd' });
  t.is(created.status, 200);
  t.is(created.json().name, name);
  t.is(created.json().selfLink, `${emu.url}/storage/v1/b/bkt/o/${enc}`);
  const viaLocalhost = (await raw(`${emu.url}/b/bkt/o/${enc}`, { headers: { Host: `localhost:${new URL(emu.url).port}` } })).json();
  t.true(viaLocalhost.mediaLink.startsWith(`http://localhost:${new URL(emu.url).port}/download/storage/v1/b/bkt/o/${enc}?generation=`));
  t.is((await raw(created.json().mediaLink)).body.toString(), 'odd');
  t.is((await raw(`${emu.url}/b/bkt/o/${enc}?alt=media`)).body.toString(), 'odd');
});

test('listing counts items and prefixes toward maxResults and can include trailing-delimiter objects', async (t) => {
  const { emu } = await ready(t);
  for (const name of ['a/', 'a/1', 'a/2', 'b', 'c/1', 'd']) {
    await raw(`${emu.url}/upload/storage/v1/b/bkt/o?uploadType=media&name=${encodeURIComponent(name)}`, { method: 'POST', body: name });
  }
  const list = async (query: string) => (await raw(`${emu.url}/storage/v1/b/bkt/o?${query}`)).json();
  const first = await list('delimiter=/&maxResults=2');
  t.deepEqual([first.items?.map((o: { name: string }) => o.name), first.prefixes], [['b'], ['a/']]);
  const second = await list(`delimiter=/&maxResults=2&pageToken=${first.nextPageToken}`);
  t.deepEqual([second.items?.map((o: { name: string }) => o.name), second.prefixes, second.nextPageToken], [['d'], ['c/'], undefined]);
  const trailing = await list('delimiter=/&includeTrailingDelimiter=true');
  t.deepEqual(
    trailing.items.map((o: { name: string }) => o.name),
    ['a/', 'b', 'd'],
  );
  t.deepEqual(trailing.prefixes, ['a/', 'c/']);
  const empty = await list('prefix=zzz');
  t.deepEqual(empty, { kind: 'storage#objects' });
});

test("errors carry Google's JSON error body", async (t) => {
  const { emu } = await ready(t);
  const missing = await raw(`${emu.url}/storage/v1/b/bkt/o/none`);
  t.is(missing.status, 404);
  t.deepEqual(missing.json(), {
    error: { code: 404, message: 'No such object: bkt/none', errors: [{ domain: 'global', reason: 'notFound', message: 'No such object: bkt/none' }] },
  });
  const noBucket = await raw(`${emu.url}/upload/storage/v1/b/nobucket/o?uploadType=media&name=x`, { method: 'POST', body: 'x' });
  t.is(noBucket.status, 404);
  t.is((await raw(`${emu.url}/upload/storage/v1/b/bkt/o?uploadType=media`, { method: 'POST', body: 'x' })).json().error.errors[0].reason, 'required');
  t.is((await raw(`${emu.url}/storage/v1/b/bkt/o?maxResults=x`)).json().error.errors[0].reason, 'invalid');
});

test('compose concatenates sources and rewrite copies an object', async (t) => {
  const { emu } = await ready(t);
  for (const [name, body] of [
    ['p1', 'hello '],
    ['p2', 'world'],
  ]) {
    await raw(`${emu.url}/upload/storage/v1/b/bkt/o?uploadType=media&name=${name}`, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body });
  }
  const composed = await raw(`${emu.url}/storage/v1/b/bkt/o/whole/compose`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ destination: { contentType: 'text/plain' }, sourceObjects: [{ name: 'p1' }, { name: 'p2' }] }),
  });
  t.is(composed.status, 200);
  t.is(composed.json().crc32c, crc('hello world'));
  t.is(composed.json().componentCount, 2);
  const rewritten = await raw(`${emu.url}/storage/v1/b/bkt/o/whole/rewriteTo/b/bkt/o/copy`, { method: 'POST' });
  t.is(rewritten.json().done, true);
  t.is(rewritten.json().resource.contentType, 'text/plain');
  t.is((await raw(`${emu.url}/storage/v1/b/bkt/o/copy?alt=media`)).body.toString(), 'hello world');
});
