/**
 * Validation of one object under `wal/`: what the pipeline runs when a
 * segment, `.partial`, `.history` or `.backup` file lands.
 */
import { pipeline } from 'node:stream/promises';
import { verifyingStream } from '../checksum/verify.ts';
import { Meta, walFileNameFromKey } from '../layout.ts';
import { recordedRawChecksum } from '../storage/decode.ts';
import type { ObjectInfo, Storage } from '../storage/types.ts';
import { checkSegmentHeader, newerWalMagicWarning, parseLongPageHeader } from '../wal/header.ts';
import { classifyWalFileName, type WalFileName } from '../wal/name.ts';
import { failed, HeadSink, openDecodedObject, resultOfError } from './decode.ts';
import type { ValidateOptions, ValidationResult, WalExpectations } from './types.ts';
import { RecordWalkSink, type RecordWalkResult } from './wal-records.ts';
import { checkBackupHistoryText, checkHistoryText, decodeText } from './wal-text.ts';

/**
 * Largest history or backup history file accepted. Both are a few hundred
 * bytes; a history file gains one line (about 60 bytes) per timeline, so this
 * allows tens of thousands while bounding memory on a damaged object.
 */
export const WAL_TEXT_LIMIT = 4 * 1024 * 1024;

/**
 * Validate the WAL object `info` (its key, size, CRC32C and metadata as the
 * storage event or `stat` reported them). The object is streamed once
 * through its codec: the stored bytes must match `info`'s size and CRC32C,
 * and the decoded ones the raw size and CRC32C in its metadata. Then, by
 * kind:
 * - segment or `.partial`: the long page header (kept alone, the rest is
 *   not held) must be that of PostgreSQL 10 to 18 or of a later release
 *   (then `details.warning` says so and the checks below decide), name this segment's start
 *   as its page address, a timeline not after the name's, a segment size
 *   equal to the object's size and to `expect.walSegmentSize`, and the system
 *   identifier of `expect.systemIdentifier` and of the object's metadata; so
 *   a segment stored under another segment's name fails; then its WAL
 *   records must check out as pg_waldump reads them (core/wal/records: page
 *   headers, record headers, `xl_prev` links, CRC32C; a zeroed or stale tail
 *   is the end of a `.partial`, and corruption in a complete segment unless
 *   after a switch record), and `details.records` holds what they say
 *   (SegmentRecordFacts: record count, transaction end times, restore points);
 * - `.history`: text that parses as PostgreSQL reads it, with a parent;
 * - `.backup`: text with a START WAL LOCATION consistent with its name.
 *
 * Resolves `{ ok: true, rawSize, rawCrc32c, details }` or `{ ok: false,
 * problem }` for any content fault, including a name that is no WAL file's
 * and missing metadata; `details.decoderUnavailable` marks a failure to load
 * the decoder (zstd without its addon). Rejects only with the driver's
 * errors (NotFoundError when the object is gone, StorageError, AuthError),
 * an abort, or a bug.
 */
export async function validateWalObject(
  storage: Storage,
  info: ObjectInfo,
  expect: WalExpectations = {},
  options: ValidateOptions = {},
): Promise<ValidationResult> {
  const name = walFileNameFromKey(info.key);
  const kind = name === undefined ? undefined : classifyWalFileName(name);
  if (name === undefined || !kind) return failed(`${info.key} is not a WAL file name`);
  try {
    const raw = recordedRawChecksum(info);
    const early = checkBeforeReading(info, kind, raw.size, expect, name);
    if (early) return early;
    const isSegment = kind.kind === 'segment' || kind.kind === 'partial';
    const sink = isSegment ? new RecordWalkSink(name, kind.kind === 'partial') : new HeadSink(WAL_TEXT_LIMIT);
    const decoded = await openDecodedObject(storage, info, options.signal);
    await pipeline(decoded, verifyingStream(raw, `decoded content of ${info.key}`), sink, { signal: options.signal });
    const checked = checkContent(info, kind, name, sink.head, raw.size, expect);
    if ('problem' in checked) return failed(checked.problem, checked.details);
    if (sink instanceof RecordWalkSink) {
      const problem = addRecordFacts(name, sink.result(), checked.details);
      if (problem) return failed(problem, checked.details);
    }
    return { ok: true, rawSize: raw.size, rawCrc32c: raw.crc32c, details: checked.details };
  } catch (err) {
    return resultOfError(err, info.key, name);
  }
}

/**
 * Put what the record walk learnt in `details.records` (SegmentRecordFacts),
 * or return the problem when the records do not check out. For WAL of a
 * release newer than gcwal knows, a record format gcwal does not know is
 * possible: the problem becomes part of the warning instead.
 */
function addRecordFacts(name: string, walk: RecordWalkResult | undefined, details: Record<string, unknown>): string | undefined {
  if (walk === undefined) return undefined;
  if ('facts' in walk) {
    details.records = walk.facts;
    return undefined;
  }
  const problem = `${name}'s WAL records do not check out: ${walk.problem}`;
  if (typeof details.warning === 'string') {
    details.warning = `${details.warning}; its records were not read: ${walk.problem}`;
    return undefined;
  }
  return problem;
}

/** Faults visible from the metadata alone, so a wrong object is not downloaded. */
function checkBeforeReading(info: ObjectInfo, kind: WalFileName, rawSize: number, expect: WalExpectations, name: string): ValidationResult | undefined {
  const recordedCluster = info.metadata[Meta.systemId];
  if (recordedCluster !== undefined && expect.systemIdentifier !== undefined && recordedCluster !== expect.systemIdentifier) {
    return failed(`${name} was archived by cluster ${recordedCluster}, not by the repository's cluster ${expect.systemIdentifier}`);
  }
  if (kind.kind === 'segment' || kind.kind === 'partial') {
    if (expect.walSegmentSize !== undefined && rawSize !== expect.walSegmentSize) {
      return failed(`${name} is ${rawSize} bytes, but the repository's segments are ${expect.walSegmentSize} bytes`);
    }
  } else if (rawSize > WAL_TEXT_LIMIT) {
    return failed(`${name} is ${rawSize} bytes; a ${kind.kind} file is text of at most ${WAL_TEXT_LIMIT} bytes`);
  }
  return undefined;
}

type Checked = { details: Record<string, unknown> } | { problem: string; details?: Record<string, unknown> };

/** The checks of the decoded content by kind; InvalidInputError for malformed content. */
function checkContent(info: ObjectInfo, kind: WalFileName, name: string, head: Buffer, rawSize: number, expect: WalExpectations): Checked {
  switch (kind.kind) {
    case 'history':
      return { details: checkHistoryText(decodeText(head, name), kind.timeline, name) };
    case 'backup':
      return { details: checkBackupHistoryText(decodeText(head, name), kind, name, expect.walSegmentSize) };
    case 'segment':
    case 'partial': {
      const header = parseLongPageHeader(head, name);
      const segment = checkSegmentHeader(header, name);
      const details: Record<string, unknown> = {
        kind: kind.kind,
        timeline: segment.timeline,
        headerTimeline: segment.headerTimeline,
        systemIdentifier: segment.systemIdentifier,
        walSegmentSize: segment.segmentSize,
        walBlockSize: segment.blockSize,
        pgMajor: segment.pgMajor,
      };
      if (segment.newerWalMagic) details.warning = newerWalMagicWarning(header.magic);
      if (rawSize !== segment.segmentSize) {
        return { problem: `${name} is ${rawSize} bytes, but its header says segments are ${segment.segmentSize} bytes`, details };
      }
      if (expect.walSegmentSize !== undefined && segment.segmentSize !== expect.walSegmentSize) {
        return { problem: `${name} holds ${segment.segmentSize}-byte segments, but the repository's are ${expect.walSegmentSize} bytes`, details };
      }
      if (expect.systemIdentifier !== undefined && segment.systemIdentifier !== expect.systemIdentifier) {
        return { problem: `${name} is WAL of cluster ${segment.systemIdentifier}, not of the repository's cluster ${expect.systemIdentifier}`, details };
      }
      const recordedCluster = info.metadata[Meta.systemId];
      if (recordedCluster !== undefined && recordedCluster !== segment.systemIdentifier) {
        return { problem: `${name} is WAL of cluster ${segment.systemIdentifier}, but its metadata names cluster ${recordedCluster}`, details };
      }
      return { details };
    }
  }
}
