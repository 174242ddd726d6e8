/**
 * A self-signed certificate for 127.0.0.1 and localhost, made with the
 * `openssl` CLI (Node has no API to create certificates) and kept in the
 * state directory, so restarts reuse it and a client told to trust
 * `cert.pem` keeps trusting it. Regenerated when missing or close to expiry.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** PEM paths and contents of the emulator's certificate and key. */
export interface TlsMaterial {
  certPath: string;
  keyPath: string;
  cert: Buffer;
  key: Buffer;
}

async function readIfValid(certPath: string, keyPath: string): Promise<TlsMaterial | undefined> {
  try {
    const [cert, key] = await Promise.all([fs.readFile(certPath), fs.readFile(keyPath)]);
    const validTo = Date.parse(new X509Certificate(cert).validTo);
    // Keep a margin so a long test run does not outlive the certificate.
    if (!(validTo > Date.now() + 6 * 3600 * 1000)) return undefined;
    return { certPath, keyPath, cert, key };
  } catch {
    return undefined;
  }
}

/**
 * The certificate in `<dir>/tls/`, creating it with openssl when needed.
 * Rejects with openssl's stderr when it fails, or with an install hint when
 * openssl is missing.
 */
export async function ensureCertificate(dir: string): Promise<TlsMaterial> {
  const tlsDir = path.join(dir, 'tls');
  const certPath = path.join(tlsDir, 'cert.pem');
  const keyPath = path.join(tlsDir, 'key.pem');
  const existing = await readIfValid(certPath, keyPath);
  if (existing) return existing;
  await fs.mkdir(tlsDir, { recursive: true });
  // Write next to the final names, then rename: a concurrent start never reads half a file.
  const suffix = `.${process.pid}.${Date.now()}.tmp`;
  try {
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      keyPath + suffix,
      '-out',
      certPath + suffix,
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-days',
      '2',
    ]);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new Error('cannot make a TLS certificate: openssl is not installed (apt-get install -y openssl)');
    throw new Error(`cannot make a TLS certificate with openssl: ${(e.stderr ?? e.message).trim().split('\n').pop()}`);
  }
  await fs.rename(keyPath + suffix, keyPath);
  await fs.rename(certPath + suffix, certPath);
  const made = await readIfValid(certPath, keyPath);
  if (!made) throw new Error(`openssl wrote no usable certificate to ${certPath}`);
  return made;
}
