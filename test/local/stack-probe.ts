/**
 * Child-process probe for stack.test.ts and the `gcwal local` test: given
 * only the environment a local stack prints, it does what the agent will do
 * (keyless ADC through the metadata stand-in, then bearer-token JSON API
 * calls to the emulator) and prints one JSON line of what happened.
 */
import { randomUUID } from 'node:crypto';
import { GoogleAuth } from 'google-auth-library';

const base = process.env.STORAGE_EMULATOR_HOST!;
const bucket = new URL(process.env.GCWAL_REPO!).host;
const name = `probe/${randomUUID()}`;
const out: Record<string, unknown> = { bucket, name };
try {
  const auth = new GoogleAuth({ scopes: ['https://www.googleapis.com/auth/devstorage.read_write'] });
  out.client = (await auth.getClient()).constructor.name;
  out.projectId = await auth.getProjectId();
  const token = await auth.getAccessToken();
  out.token = token;
  const bearer = { Authorization: `Bearer ${token}` };

  const boundary = randomUUID();
  const body = `--${boundary}\r\nContent-Type: application/json\r\n\r\n{"contentType":"text/plain"}\r\n--${boundary}\r\nContent-Type: text/plain\r\n\r\nhello\r\n--${boundary}--`;
  const upload = await fetch(`${base}/upload/storage/v1/b/${bucket}/o?uploadType=multipart&name=${encodeURIComponent(name)}&ifGenerationMatch=0`, {
    method: 'POST',
    headers: { ...bearer, 'Content-Type': `multipart/related; boundary=${boundary}` },
    body,
  });
  out.upload = upload.status;
  out.read = (await fetch(`${base}/storage/v1/b/${bucket}/o/${encodeURIComponent(name)}?alt=media`, { headers: bearer })).status;
  out.list = (await fetch(`${base}/storage/v1/b/${bucket}/o?prefix=probe%2F`, { headers: bearer })).status;
  out.delete = (await fetch(`${base}/storage/v1/b/${bucket}/o/${encodeURIComponent(name)}`, { method: 'DELETE', headers: bearer })).status;
  out.anonymous = (await fetch(`${base}/storage/v1/b/${bucket}/o`)).status;
} catch (err) {
  out.error = (err as Error).message;
}
process.stdout.write(JSON.stringify(out) + '\n');
