import test from 'ava';
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { startGcsEmulator } from '../../../local/gcs/server.ts';
import { startTestEmulator } from './harness.ts';

/** GET over HTTPS trusting only `ca`, as a client given the emulator's certificate would. */
function get(url: string, ca: Buffer, servername?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request(
      { host: u.hostname, port: u.port, path: u.pathname + u.search, ca, servername, headers: { Host: `${servername ?? u.hostname}:${u.port}` }, agent: false },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

test('the HTTPS endpoint presents a certificate valid for 127.0.0.1 and localhost and links back over https', async (t) => {
  const { emu, dir } = await startTestEmulator(t, { https: true });
  await emu.createBucket('bkt');
  t.truthy(emu.httpsUrl);
  t.true(emu.caCertPath!.startsWith(dir));
  const ca = await readFile(emu.caCertPath!);
  const bucket = await get(`${emu.httpsUrl}/storage/v1/b/bkt`, ca);
  t.is(bucket.status, 200);
  t.is(JSON.parse(bucket.body).selfLink, `${emu.httpsUrl}/storage/v1/b/bkt`);
  const viaName = await get(`${emu.httpsUrl!.replace('127.0.0.1', 'localhost')}/storage/v1/b/bkt`, ca, 'localhost');
  t.is(viaName.status, 200);
  t.is(JSON.parse(viaName.body).selfLink, `${emu.httpsUrl!.replace('127.0.0.1', 'localhost')}/storage/v1/b/bkt`);
});

test('a restart on the same directory reuses the certificate', async (t) => {
  const { emu, dir } = await startTestEmulator(t, { https: true });
  const first = await readFile(emu.caCertPath!);
  await emu.close();
  const again = await startGcsEmulator({ dir, https: { port: 0 } });
  t.teardown(() => again.close());
  t.deepEqual(await readFile(again.caCertPath!), first);
});

test('without https only the HTTP URL is served', async (t) => {
  const { emu } = await startTestEmulator(t);
  t.regex(emu.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.is(emu.httpsUrl, undefined);
  t.is(emu.caCertPath, undefined);
});
