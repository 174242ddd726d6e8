/**
 * A reference point, not a product: the least a Node process must do to
 * archive one WAL segment durably into a directory, with the same native
 * libraries gcwal loads. It reads the file once, takes its CRC32C, compresses
 * 256 KiB blocks with LZO1X-1 carrying native CRC-32 checksums of each raw
 * and compressed block (as an lzop stream with the CRC-32 flags would),
 * reads the repository identity, then writes the object and a metadata file
 * under temp names, fsyncs both, links and renames them into place, and
 * fsyncs the directory. Run as a fresh process, its wall time is a floor for
 * what gcwal wal-push could reach in Node with the same guarantees.
 *
 * Plain JavaScript so it starts as fast as Node can (no TypeScript loader).
 * Usage: node floor-push.mjs <gcwal install dir> <segment> <repository dir>
 */
import { closeSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { crc32 } from 'node:zlib';

const [installDir, segment, repo] = process.argv.slice(2);
const require = createRequire(path.join(installDir, 'gcwal.mjs'));
const lzo = require('lzo');
const crc32c = require('fast-crc32c');

const BLOCK = 256 * 1024;
const data = readFileSync(segment);
const rawCrc = crc32c.calculate(data);
const systemId = data.readBigUInt64LE(8).toString();

const parts = [];
for (let offset = 0; offset < data.length; offset += BLOCK) {
  const raw = data.subarray(offset, offset + BLOCK);
  const packed = lzo.compress(raw);
  const head = Buffer.allocUnsafe(16);
  head.writeUInt32BE(raw.length, 0);
  head.writeUInt32BE(packed.length, 4);
  head.writeUInt32BE(crc32(raw), 8);
  head.writeUInt32BE(crc32(packed), 12);
  parts.push(head, packed);
}
const stored = Buffer.concat(parts);

const identityFile = path.join(repo, 'identity.json');
if (existsSync(identityFile)) {
  if (JSON.parse(readFileSync(identityFile, 'utf8')).systemId !== systemId) throw new Error('another cluster');
} else {
  mkdirSync(repo, { recursive: true });
  writeFileSync(identityFile, JSON.stringify({ systemId }));
}
const name = path.basename(segment);
const target = path.join(repo, name);
if (existsSync(target)) throw new Error(`${name} exists`);

const durable = (file, bytes) => {
  const fd = openSync(file, 'wx');
  // 512 KiB writes: on some kernels (this benchmark's VM) one write() over 1 MiB is several times slower.
  for (let offset = 0; offset < bytes.length; offset += 512 * 1024) writeSync(fd, bytes.subarray(offset, offset + 512 * 1024));
  fsyncSync(fd);
  closeSync(fd);
};
const tmp = path.join(repo, `.${name}.${process.pid}`);
durable(tmp, stored);
durable(`${tmp}.json`, Buffer.from(JSON.stringify({ size: stored.length, crc32c: crc32c.calculate(stored), rawCrc, rawSize: data.length })));
linkSync(tmp, target);
unlinkSync(tmp);
renameSync(`${tmp}.json`, `${target}.json`);
const dir = openSync(repo, 'r');
fsyncSync(dir);
closeSync(dir);
