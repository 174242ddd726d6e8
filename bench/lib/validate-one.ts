/**
 * Entry point of the validation benchmark's child process, bundled by
 * bench/validate.ts the way a function would be: validate one object or
 * backup of a file:// repository and print one JSON line with the result and
 * the time the call took.
 *
 *   validate-one.mjs wal|part|backup <repo url> <key> [<system identifier> <segment size>]
 *   validate-one.mjs walk <segment file>      the record walk alone, over the raw segment
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import { RecordWalkSink } from '../../core/validate/wal-records.ts';
import { FileStorage } from '../../core/storage/file/storage.ts';
import { validateBackup, validateBackupPart, validateWalObject, type ValidationResult } from '../../core/validate/index.ts';

const [kind, url, key, systemIdentifier, segmentSize] = process.argv.slice(2);
if (kind === 'walk') {
  // The record walk alone, as validation runs it (a sink the segment streams through).
  const loadedMs = performance.now();
  const started = performance.now();
  const sink = new RecordWalkSink(path.basename(url!), false);
  await pipeline(createReadStream(url!, { highWaterMark: 256 * 1024 }), sink);
  const walk = sink.result();
  const ms = performance.now() - started;
  const facts = walk && 'facts' in walk ? walk.facts : undefined;
  process.stdout.write(
    JSON.stringify({
      loadedMs,
      ms,
      ok: facts !== undefined,
      problem: walk && 'problem' in walk ? walk.problem : undefined,
      rawSize: (await stat(url!)).size,
      records: facts?.records,
    }) + '\n',
  );
  process.exit(0);
}
if (!kind || !url || !key || !['wal', 'part', 'backup'].includes(kind))
  throw new Error('usage: validate-one wal|part|backup <repo url> <key> [<system identifier> <segment size>]');
const storage = new FileStorage(url);
const expect = systemIdentifier ? { systemIdentifier, walSegmentSize: Number(segmentSize) } : {};
// performance.now() counts from the process's start: what came before the
// call is Node's start-up and the bundle's load.
const loadedMs = performance.now();
const started = performance.now();
const info = await storage.stat(key);
if (!info) throw new Error(`${key} does not exist in ${url}`);
const result: ValidationResult =
  kind === 'wal'
    ? await validateWalObject(storage, info, expect)
    : kind === 'part'
      ? await validateBackupPart(storage, info)
      : await validateBackup(storage, info, expect);
const ms = performance.now() - started;
const records = (result.details?.records as { records?: number } | undefined)?.records;
process.stdout.write(
  JSON.stringify({ loadedMs, ms, ok: result.ok, problem: result.problem, rawSize: result.rawSize ?? result.details?.rawSize, records }) + '\n',
);
