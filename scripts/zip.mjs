/**
 * A minimal, deterministic ZIP writer (PKZIP 2.0: deflate, no ZIP64), enough
 * for a Cloud Functions source archive: a few files of a few MiB. Written
 * here rather than shelling out to `zip` so the build needs no system
 * package, and so the same inputs always give the same bytes: entries in the
 * order given, every timestamp 1980-01-01 00:00 (the DOS epoch), no extra
 * fields. Terraform names the uploaded object after the archive's MD5, so a
 * rebuild of unchanged code must not look like a new release.
 */
import { deflateRawSync } from 'node:zlib';

/** DOS date 1980-01-01 (year offset 0, month 1, day 1) and time 00:00:00. */
const DOS_DATE = (0 << 9) | (1 << 5) | 1;
const DOS_TIME = 0;
/** version 2.0: deflate; "made by" Unix (3) so the external attributes carry file modes */
const VERSION_NEEDED = 20;
const VERSION_MADE_BY = (3 << 8) | 20;
/** general purpose flag bit 11: the name is UTF-8 */
const FLAG_UTF8 = 0x0800;
const METHOD_DEFLATE = 8;
/** regular file, rw-r--r-- */
const FILE_MODE = 0o100644;

/** The largest size or offset a non-ZIP64 archive can record. */
const MAX_32 = 0xffffffff;

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (ISO-HDLC, as ZIP uses) of `data`. */
export function crc32(data) {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * Build a ZIP archive in memory from `entries` ({ name, data }: a relative
 * path with forward slashes and the file's bytes). Throws on an absolute or
 * `..` name, a duplicate name, or an archive that would need ZIP64.
 * @param {ReadonlyArray<{ name: string; data: Uint8Array }>} entries
 * @returns {Buffer}
 */
export function zipFiles(entries) {
  const seen = new Set();
  const locals = [];
  const centrals = [];
  let offset = 0;
  for (const { name, data } of entries) {
    if (name === '' || name.startsWith('/') || name.split('/').includes('..') || name.includes('\\')) {
      throw new Error(`zip: entry name ${JSON.stringify(name)} must be a relative path with forward slashes`);
    }
    if (seen.has(name)) throw new Error(`zip: duplicate entry ${name}`);
    seen.add(name);
    const nameBytes = Buffer.from(name, 'utf8');
    const compressed = deflateRawSync(data, { level: 9 });
    const crc = crc32(data);
    if (data.length > MAX_32 || compressed.length > MAX_32) throw new Error(`zip: ${name} is too large for an archive without ZIP64`);

    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(VERSION_NEEDED, 4);
    local.writeUInt16LE(FLAG_UTF8, 6);
    local.writeUInt16LE(METHOD_DEFLATE, 8);
    local.writeUInt16LE(DOS_TIME, 10);
    local.writeUInt16LE(DOS_DATE, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(compressed.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    local.writeUInt16LE(0, 28);
    locals.push(local, nameBytes, compressed);

    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(VERSION_MADE_BY, 4);
    central.writeUInt16LE(VERSION_NEEDED, 6);
    central.writeUInt16LE(FLAG_UTF8, 8);
    central.writeUInt16LE(METHOD_DEFLATE, 10);
    central.writeUInt16LE(DOS_TIME, 12);
    central.writeUInt16LE(DOS_DATE, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(compressed.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(nameBytes.length, 28);
    // extra length, comment length, disk number start, internal attributes: all 0
    central.writeUInt32LE(FILE_MODE * 0x10000, 38);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, nameBytes);

    offset += local.length + nameBytes.length + compressed.length;
    if (offset > MAX_32) throw new Error('zip: archive too large without ZIP64');
  }
  const centralSize = centrals.reduce((sum, b) => sum + b.length, 0);
  if (entries.length > 0xffff) throw new Error('zip: too many entries without ZIP64');
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, ...centrals, end]);
}
