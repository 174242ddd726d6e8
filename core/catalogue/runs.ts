/**
 * Runs: how the catalogue keeps settled WAL in space that does not grow with
 * the archive (docs/catalogue.md). A valid segment is folded into the run of
 * valid segments it continues; a run is split again only when one of its
 * segments changes (deleted, replaced, found corrupt). Deleted segments are
 * folded the same way into tombstone ranges. Every function here is pure and
 * returns new arrays; the inputs are never modified.
 */
import { parseLsn } from '../wal/lsn.ts';
import { parseWalSegmentName, segmentNumberOfLsn, walSegmentName } from '../wal/name.ts';
import { compareGenerations } from './keys.ts';
import type { Catalogue, CatalogueWalEntry, CatalogueWalRecords, CatalogueWalRun, SegmentTombstones } from './types.ts';

/**
 * The widest spread of creation times one run (or tombstone range) covers.
 * A folded segment's own creation time is only known to within this, which
 * is what retention's age rules (in days) can afford; it also bounds the
 * number of runs to about one per hour of archive, whatever the WAL rate.
 */
export const RUN_SPAN_MS = 60 * 60 * 1000;

/** A segment's timeline and number at `segSize`, or undefined when the name is not a segment there. */
export function segmentId(name: string, segSize: number): { timeline: number; segNo: bigint } | undefined {
  if (!/^[0-9A-F]{24}$/.test(name)) return undefined;
  try {
    return parseWalSegmentName(name, segSize);
  } catch {
    return undefined;
  }
}

/** What runs and tombstone ranges share: a timeline and an inclusive span of segment names. */
interface Span {
  timeline: number;
  first: string;
  last: string;
}

/** The segment numbers a span covers. */
export function spanBounds(span: Span, segSize: number): { from: bigint; to: bigint } {
  return { from: parseWalSegmentName(span.first, segSize).segNo, to: parseWalSegmentName(span.last, segSize).segNo };
}

/** How many segments a run holds. */
export function runLength(run: CatalogueWalRun, segSize: number): number {
  const { from, to } = spanBounds(run, segSize);
  return Number(to - from) + 1;
}

/** Index of the span of `timeline` holding `segNo` in a sorted list, or -1. */
export function findSpan(list: readonly Span[], timeline: number, segNo: bigint, segSize: number): number {
  let lo = 0;
  let hi = list.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const span = list[mid];
    if (span.timeline !== timeline) {
      if (span.timeline < timeline) lo = mid + 1;
      else hi = mid - 1;
      continue;
    }
    const { from, to } = spanBounds(span, segSize);
    if (segNo < from) hi = mid - 1;
    else if (segNo > to) lo = mid + 1;
    else return mid;
  }
  return -1;
}

/** Where a span starting at (timeline, segNo) goes in a sorted list. */
function insertionPoint(list: readonly Span[], timeline: number, segNo: bigint, segSize: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const span = list[mid];
    const before = span.timeline < timeline || (span.timeline === timeline && spanBounds(span, segSize).from < segNo);
    if (before) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function timeMs(iso: string): number {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? 0 : t;
}

/** Whether the times lie within RUN_SPAN_MS of each other. */
function withinSpan(...times: string[]): boolean {
  const ms = times.map(timeMs);
  return Math.max(...ms) - Math.min(...ms) <= RUN_SPAN_MS;
}

function maxGeneration(a: string, b: string): string {
  return compareGenerations(a, b) >= 0 ? a : b;
}

function laterIso(a: string, b: string): string {
  return timeMs(a) >= timeMs(b) ? a : b;
}

/**
 * The creation time of segment `segNo` of a run, as far as the run knows it:
 * exact at its ends, interpolated between them inside.
 */
export function createdWithin(run: CatalogueWalRun, segNo: bigint, segSize: number): string {
  const { from, to } = spanBounds(run, segSize);
  if (segNo <= from) return run.firstCreated;
  if (segNo >= to) return run.lastCreated;
  const a = timeMs(run.firstCreated);
  const b = timeMs(run.lastCreated);
  return new Date(Math.round(a + ((b - a) * Number(segNo - from)) / Number(to - from))).toISOString();
}

/** The segment number an LSN lies in, or undefined for text that is not an LSN. */
function segmentOfLsn(lsn: string | undefined, segSize: number): bigint | undefined {
  if (lsn === undefined) return undefined;
  try {
    return segmentNumberOfLsn(parseLsn(lsn), segSize);
  } catch {
    return undefined;
  }
}

/**
 * A run's record facts restricted to segments `from`..`to`: the restore
 * points there, and the last transaction end if it lies there. Undefined
 * when the run has none, or when the last transaction end lies outside
 * (the part's own latest one is then unknown).
 */
function recordsWithin(
  records: CatalogueWalRecords | undefined,
  from: bigint,
  to: bigint,
  segSize: number,
  keepUnknownLast: boolean,
): CatalogueWalRecords | undefined {
  if (!records) return undefined;
  const inside = (lsn: string | undefined) => {
    const seg = segmentOfLsn(lsn, segSize);
    return seg !== undefined && seg >= from && seg <= to;
  };
  const last = records.lastXactTime !== undefined && inside(records.lastXactLsn);
  if (records.lastXactTime !== undefined && !last && !keepUnknownLast) return undefined;
  return {
    ...(last ? { lastXactTime: records.lastXactTime, lastXactLsn: records.lastXactLsn } : {}),
    restorePoints: records.restorePoints.filter((p) => inside(p.lsn)),
  };
}

function joinRecords(a: CatalogueWalRecords | undefined, b: CatalogueWalRecords | undefined): CatalogueWalRecords | undefined {
  if (!a || !b) return undefined;
  // Times are ISO with six fractional digits: they compare as text.
  const lastFrom = a.lastXactTime !== undefined && (b.lastXactTime === undefined || a.lastXactTime > b.lastXactTime) ? a : b;
  const first = [a.firstXactTime, b.firstXactTime].filter((t): t is string => t !== undefined).sort()[0];
  return {
    ...(first !== undefined ? { firstXactTime: first } : {}),
    ...(lastFrom.lastXactTime !== undefined ? { lastXactTime: lastFrom.lastXactTime, lastXactLsn: lastFrom.lastXactLsn } : {}),
    restorePoints: [...a.restorePoints, ...b.restorePoints],
  };
}

/**
 * What a run knows of one of its segments, as an entry: state valid, the
 * run's highest generation (unless `generation` says which one it is), the
 * run's mean size and the interpolated creation time.
 */
export function entryInRun(run: CatalogueWalRun, segNo: bigint, segSize: number, generation = run.generation): CatalogueWalEntry {
  const length = runLength(run, segSize);
  return {
    name: walSegmentName(run.timeline, segNo, segSize),
    generation,
    size: Math.round(run.size / length),
    created: createdWithin(run, segNo, segSize),
    state: 'valid',
    validated: run.validated,
    // Records stay with the segment they lie in; a segment without any of the run's has none.
    ...(run.records ? { records: recordsWithin(run.records, segNo, segNo, segSize, true)! } : {}),
  };
}

/** A part of `run` from `from` to `to` (inclusive), its size shared out evenly and its end times interpolated. */
function subRun(run: CatalogueWalRun, from: bigint, to: bigint, segSize: number): CatalogueWalRun {
  const length = runLength(run, segSize);
  const { records: _records, ...rest } = run;
  const records = recordsWithin(run.records, from, to, segSize, false);
  return {
    ...rest,
    ...(records ? { records } : {}),
    first: walSegmentName(run.timeline, from, segSize),
    last: walSegmentName(run.timeline, to, segSize),
    size: Math.round((run.size * (Number(to - from) + 1)) / length),
    firstCreated: createdWithin(run, from, segSize),
    lastCreated: createdWithin(run, to, segSize),
  };
}

/** `runs` without segment `segNo` of the run at `index` (which is split, shortened or dropped). */
export function withoutSegment(runs: readonly CatalogueWalRun[], index: number, segNo: bigint, segSize: number): CatalogueWalRun[] {
  const run = runs[index];
  const { from, to } = spanBounds(run, segSize);
  const pieces: CatalogueWalRun[] = [];
  if (segNo > from) pieces.push(subRun(run, from, segNo - 1n, segSize));
  if (segNo < to) pieces.push(subRun(run, segNo + 1n, to, segSize));
  return [...runs.slice(0, index), ...pieces, ...runs.slice(index + 1)];
}

/**
 * `runs` with the valid segment `entry` folded in: joined to the run ending
 * just before it and the one starting just after it when the creation times
 * stay within RUN_SPAN_MS, else a run of its own. A segment a run already
 * holds leaves `runs` as they are.
 */
export function withSegment(runs: readonly CatalogueWalRun[], entry: CatalogueWalEntry, segSize: number): readonly CatalogueWalRun[] {
  const id = segmentId(entry.name, segSize);
  if (!id || findSpan(runs, id.timeline, id.segNo, segSize) >= 0) return runs;
  let run: CatalogueWalRun = {
    timeline: id.timeline,
    first: entry.name,
    last: entry.name,
    size: entry.size,
    firstCreated: entry.created,
    lastCreated: entry.created,
    generation: entry.generation,
    validated: entry.validated ?? entry.created,
    ...(entry.records ? { records: entry.records } : {}),
  };
  const at = insertionPoint(runs, id.timeline, id.segNo, segSize);
  let start = at;
  let end = at;
  const left = runs[at - 1];
  if (
    left &&
    left.timeline === id.timeline &&
    spanBounds(left, segSize).to === id.segNo - 1n &&
    withinSpan(left.firstCreated, left.lastCreated, run.lastCreated)
  ) {
    run = join(left, run);
    start = at - 1;
  }
  const right = runs[at];
  if (
    right &&
    right.timeline === id.timeline &&
    spanBounds(right, segSize).from === id.segNo + 1n &&
    withinSpan(run.firstCreated, run.lastCreated, right.firstCreated, right.lastCreated)
  ) {
    run = join(run, right);
    end = at + 1;
  }
  return [...runs.slice(0, start), run, ...runs.slice(end)];
}

function join(a: CatalogueWalRun, b: CatalogueWalRun): CatalogueWalRun {
  return {
    timeline: a.timeline,
    first: a.first,
    last: b.last,
    size: a.size + b.size,
    firstCreated: a.firstCreated,
    lastCreated: b.lastCreated,
    generation: maxGeneration(a.generation, b.generation),
    validated: laterIso(a.validated, b.validated),
    ...withRecords(joinRecords(a.records, b.records)),
  };
}

function withRecords(records: CatalogueWalRecords | undefined): { records?: CatalogueWalRecords } {
  return records ? { records } : {};
}

/**
 * `list` with the deletion of segment `segNo` (generation `generation`, at
 * `deleted`) recorded: raising the range holding it, or a range of its own
 * joined to its neighbours when their deletions lie within RUN_SPAN_MS (so a
 * range expires, TOMBSTONE_TTL_MS after its latest deletion, soon after the
 * prune that made it). Returns `list` itself when it already says as much.
 */
export function withSegmentTombstone(
  list: readonly SegmentTombstones[],
  timeline: number,
  segNo: bigint,
  generation: string,
  deleted: string,
  segSize: number,
): readonly SegmentTombstones[] {
  const index = findSpan(list, timeline, segNo, segSize);
  if (index >= 0) {
    const range = list[index];
    const next = { ...range, generation: maxGeneration(range.generation, generation), deleted: laterIso(range.deleted, deleted) };
    if (next.generation === range.generation && next.deleted === range.deleted) return list;
    return [...list.slice(0, index), next, ...list.slice(index + 1)];
  }
  const name = walSegmentName(timeline, segNo, segSize);
  let range: SegmentTombstones = { timeline, first: name, last: name, generation, deleted };
  const at = insertionPoint(list, timeline, segNo, segSize);
  let start = at;
  let end = at;
  const left = list[at - 1];
  if (left && left.timeline === timeline && spanBounds(left, segSize).to === segNo - 1n && withinSpan(left.deleted, deleted)) {
    range = { ...range, first: left.first, generation: maxGeneration(left.generation, generation), deleted: laterIso(left.deleted, deleted) };
    start = at - 1;
  }
  const right = list[at];
  if (right && right.timeline === timeline && spanBounds(right, segSize).from === segNo + 1n && withinSpan(right.deleted, range.deleted)) {
    range = { ...range, last: right.last, generation: maxGeneration(right.generation, range.generation), deleted: laterIso(right.deleted, range.deleted) };
    end = at + 1;
  }
  return [...list.slice(0, start), range, ...list.slice(end)];
}

/** The tombstone range holding segment `name`, if any. */
export function segmentTombstoneOf(list: readonly SegmentTombstones[], name: string, segSize: number): SegmentTombstones | undefined {
  const id = segmentId(name, segSize);
  if (!id) return undefined;
  const index = findSpan(list, id.timeline, id.segNo, segSize);
  return index >= 0 ? list[index] : undefined;
}

/** The segment size runs are kept at: the catalogue's own, else none (nothing is folded until it is known). */
export function runSegmentSize(catalogue: Pick<Catalogue, 'walSegmentSize'>): number | undefined {
  return catalogue.walSegmentSize;
}

/**
 * The catalogue's entry for WAL file `name`: its own entry, or what the run
 * holding it knows (see entryInRun). Undefined when the catalogue has neither.
 */
export function walEntry(catalogue: Catalogue, name: string): (CatalogueWalEntry & { folded?: true }) | undefined {
  const own = Object.hasOwn(catalogue.wal, name) ? catalogue.wal[name] : undefined;
  if (own) return own;
  const segSize = runSegmentSize(catalogue);
  if (segSize === undefined || catalogue.walRuns.length === 0) return undefined;
  const id = segmentId(name, segSize);
  if (!id) return undefined;
  const index = findSpan(catalogue.walRuns, id.timeline, id.segNo, segSize);
  return index >= 0 ? { ...entryInRun(catalogue.walRuns[index], id.segNo, segSize), folded: true } : undefined;
}

/**
 * Whether the catalogue holds WAL file `name` at `generation`: its entry's
 * generation, or for a folded segment any generation up to its run's.
 */
export function holdsWalGeneration(catalogue: Catalogue, name: string, generation: string): boolean {
  const entry = walEntry(catalogue, name);
  if (!entry) return false;
  const order = compareGenerations(generation, entry.generation);
  return entry.folded ? order <= 0 : order === 0;
}

/**
 * Every WAL file of the catalogue, runs expanded segment by segment (see
 * entryInRun: a folded segment's generation is its run's highest, flagged by
 * `folded`). Lazy: a large archive has millions; callers that can work on
 * runs (derive.ts, the alerts) do not use this.
 */
export function* walEntries(catalogue: Catalogue): Generator<CatalogueWalEntry & { folded?: true }> {
  yield* Object.values(catalogue.wal);
  const segSize = runSegmentSize(catalogue);
  if (segSize === undefined) return;
  for (const run of catalogue.walRuns) {
    const { from, to } = spanBounds(run, segSize);
    for (let segNo = from; segNo <= to; segNo++) yield { ...entryInRun(run, segNo, segSize), folded: true };
  }
}

/** The number of WAL files the catalogue describes (runs counted segment by segment). */
export function walFileCount(catalogue: Catalogue): number {
  const segSize = runSegmentSize(catalogue);
  let n = Object.keys(catalogue.wal).length;
  if (segSize !== undefined) for (const run of catalogue.walRuns) n += runLength(run, segSize);
  return n;
}
