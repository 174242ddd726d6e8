/**
 * The bytes of the catalogue object (docs/catalogue.md). Since issue 15 it is
 * gzip, in one or two members:
 *
 *   member 1: the main JSON (everything but the settled backups, see
 *             settled.ts), with a gzip extra field `GW` holding the member's
 *             own length in bytes (uint32, little-endian), so a reader finds
 *             where member 2 starts without inflating anything;
 *   member 2: `{"backups":…,"parts":…}` of the settled backups, when any.
 *
 * An update copies member 2 as it is unless the settled backups change, so
 * its cost follows the main JSON. `gunzip` prints both members, one JSON text
 * per line. Plain JSON and a single plain gzip member (what gcwal wrote
 * before) are still read, as a whole catalogue.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { CorruptObjectError } from '../errors.ts';
import type { SettledBackups } from './settled.ts';

/** Largest catalogue read, well under V8's string limit. */
export const CATALOGUE_LIMIT = 256 * 1024 * 1024;

/** Gzip header flag: an extra field follows the 10-byte header (RFC 1952). */
const FEXTRA = 0x04;
/** Our subfield of the extra field: `GW`, 4 bytes of member length. */
const SUBFIELD = [0x47, 0x57] as const;

const HINT = 'the catalogue was damaged; move it aside and let the pipeline rebuild it from a listing';

/** The catalogue object taken apart: the main JSON text, and the settled member as stored, when there is one. */
export interface CatalogueParts {
  text: string;
  settled?: Buffer;
}

/** gzip of `text` (level 1: most of the saving at a fraction of the default level's CPU). */
function gzip(text: string): Buffer {
  return gzipSync(text, { level: 1 });
}

function gunzip(body: Buffer, location: string, what: string): string {
  try {
    return gunzipSync(body, { maxOutputLength: CATALOGUE_LIMIT }).toString('utf8');
  } catch (err) {
    throw new CorruptObjectError(`catalogue ${location}${what ? ` ${what}` : ''} is not valid gzip: ${(err as Error).message}`, HINT, { cause: err });
  }
}

/** The stored object: the main JSON as member 1 (with its length in the `GW` extra field), then `settled` as stored. */
export function encodeCatalogueObject(text: string, settled?: Buffer): Buffer {
  // A newline after the main JSON when a second member follows: `gunzip` then prints one JSON text a line.
  const plain = gzip(settled ? `${text}\n` : text);
  const extra = Buffer.alloc(10);
  extra.writeUInt16LE(8, 0);
  extra[2] = SUBFIELD[0];
  extra[3] = SUBFIELD[1];
  extra.writeUInt16LE(4, 4);
  extra.writeUInt32LE(plain.length + extra.length, 6);
  const header = Buffer.from(plain.subarray(0, 10));
  header[3] |= FEXTRA;
  return Buffer.concat([header, extra, plain.subarray(10), ...(settled ? [settled] : [])]);
}

/** The settled member's bytes, from its JSON (`JSON.stringify` of SettledBackups). */
export function encodeSettled(json: string): Buffer {
  return gzip(json);
}

/** The length of member 1 from its `GW` extra field, or undefined when it has none. */
function memberLength(body: Buffer): number | undefined {
  if (body.length < 22 || !(body[3] & FEXTRA)) return undefined;
  const end = 12 + body.readUInt16LE(10);
  for (let at = 12; at + 4 <= end && at + 4 <= body.length; at += 4 + body.readUInt16LE(at + 2)) {
    if (body[at] === SUBFIELD[0] && body[at + 1] === SUBFIELD[1] && body.readUInt16LE(at + 2) === 4 && at + 8 <= body.length) return body.readUInt32LE(at + 4);
  }
  return undefined;
}

/** Take the stored bytes apart (see the module comment); CorruptObjectError when they are not a catalogue object. */
export function decodeCatalogueObject(body: Buffer, location: string): CatalogueParts {
  if (body.length < 2 || body[0] !== 0x1f || body[1] !== 0x8b) return { text: body.toString('utf8') };
  const length = memberLength(body);
  if (length === undefined) return { text: gunzip(body, location, '') };
  if (length < 22 || length > body.length)
    throw new CorruptObjectError(`catalogue ${location} names a first member of ${length} bytes in ${body.length}`, HINT);
  const text = gunzip(body.subarray(0, length), location, 'main member').replace(/\n$/, '');
  return length === body.length ? { text } : { text, settled: body.subarray(length) };
}

/** The settled backups from their member's bytes; CorruptObjectError when they are not. */
export function decodeSettled(bytes: Buffer, location: string): SettledBackups {
  let value: unknown;
  try {
    value = JSON.parse(gunzip(bytes, location, 'settled member'));
  } catch (err) {
    if (err instanceof CorruptObjectError) throw err;
    throw new CorruptObjectError(`catalogue ${location} settled member is not valid json: ${(err as Error).message.split('\n')[0]}`, HINT, { cause: err });
  }
  const record = value as Partial<SettledBackups> | null;
  const isMap = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isMap(record) || !isMap(record!.backups) || !isMap(record!.parts))
    throw new CorruptObjectError(`catalogue ${location} settled member is not a set of backups and parts`, HINT);
  return record as SettledBackups;
}
