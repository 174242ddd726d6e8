/**
 * Keep or delete each WAL object. A WAL object is deleted only when it is
 * validated (not pending), not from the future, outside the WAL window, no
 * kept backup may replay it, and it is older than the anchor (the oldest kept
 * restorable backup): on the anchor's timeline, before its start segment; on
 * any other timeline, created before the anchor started (the history files'
 * contents are not in the catalogue, so a position on another timeline cannot
 * be placed on the anchor's history). History files follow the timelines:
 * one is deleted only when nothing kept is on its timeline and every kept
 * backup is on a higher one, so recovery's probe for newer timelines (which
 * stops at the first missing history file) never meets a hole.
 *
 * The segments of a run (a span, wal-items.ts) are decided in pieces: the
 * rules above change along a run only where a position passes a backup's
 * start or a creation time passes now, the WAL window's start or the
 * anchor's start, so the run is cut there (binary searches) and each piece
 * is decided by its first segment, as one planned object for all of them
 * (`through`, `count`).
 */
import type { PlannedObject } from './types.ts';
import type { AssessedBackup } from './backups.ts';
import { firstWhere, spanCreatedMs, spanItem, spanPosition, type WalItem } from './wal-items.ts';

/** What the WAL decisions depend on. */
export interface WalDecisionContext {
  nowMs: number;
  /** now − walRetainDays, when set */
  walFromMs?: number;
  walRetainDays?: number;
  /** the oldest kept restorable backup; undefined means nothing may be deleted */
  anchor?: AssessedBackup;
  /**
   * When the anchor started: the earlier of its start time and its start
   * segment's creation (the latter on the storage's clock, like every
   * object's creation time); NaN deletes nothing by age.
   */
  anchorTimeMs: number;
  /** every kept backup, oldest first */
  kept: readonly AssessedBackup[];
}

/**
 * For a timeline, the kept backup whose WAL reaches furthest back on it: among
 * kept backups on this timeline or a lower one (a lower one may be its
 * ancestor; the history files' contents are not in the catalogue), the one
 * with the lowest start position.
 */
function neededFrom(kept: readonly AssessedBackup[], timeline: number): AssessedBackup | undefined {
  let best: AssessedBackup | undefined;
  for (const b of kept) {
    if (b.timeline <= timeline && (best === undefined || b.startPosition < best.startPosition)) best = b;
  }
  return best;
}

function planned(item: WalItem, code: PlannedObject['code'], reason: string): PlannedObject {
  // A folded segment's own generation is not kept: delete whichever is live, unless newer than its run (execute.ts).
  const generation = item.entry.folded ? { generationAtMost: item.entry.generation } : { generation: item.entry.generation };
  return { key: item.key, ...generation, kind: item.kind, ...(item.timeline !== undefined ? { timeline: item.timeline } : {}), code, reason };
}

/** Decisions common to every WAL object, before its kind matters. */
function protectedReason(item: WalItem, ctx: WalDecisionContext): PlannedObject | undefined {
  if (item.entry.state === 'pending') return planned(item, 'pending', 'not validated yet: never deleted');
  if (!(item.createdMs <= ctx.nowMs))
    return planned(item, 'future', `created ${item.entry.created}, after now (clock skew) or unreadable: treated as the newest`);
  if (ctx.anchor === undefined) return planned(item, 'no-restorable-backup', 'nothing is deleted while no kept backup is restorable');
  if (item.kind === 'other-wal') return planned(item, 'unrecognised', 'not a wal file name gcwal knows at this segment size: left alone');
  if (ctx.walFromMs !== undefined && item.createdMs >= ctx.walFromMs)
    return planned(item, 'wal-window', `created within the ${ctx.walRetainDays}-day wal window`);
  return undefined;
}

/** The decision for one item (a single object, or a piece of a span by its first segment). */
function decideOne(item: WalItem, ctx: WalDecisionContext, needer: (timeline: number) => AssessedBackup | undefined): PlannedObject {
  const decision = protectedReason(item, ctx);
  if (decision) return decision;
  // protectedReason settled every item without a position or an anchor
  const anchor = ctx.anchor!;
  const timeline = item.timeline!;
  const position = item.position!;
  const needs = needer(timeline);
  if (needs && position >= needs.startPosition) return planned(item, 'needed-by-backup', `backup ${needs.backup.name} may replay it`);
  if (timeline === anchor.timeline) {
    return position < anchor.startPosition
      ? planned(item, 'superseded-wal', `before the start of backup ${anchor.backup.name}, the oldest kept restorable backup, and no kept backup replays it`)
      : planned(item, 'not-superseded', `not before the start of backup ${anchor.backup.name}, the oldest kept restorable backup`);
  }
  // Off the anchor's timeline a position says little (a branch can
  // start below the anchor and still be live), so age decides.
  return item.createdMs < ctx.anchorTimeMs
    ? planned(
        item,
        'superseded-wal',
        `on timeline ${timeline}, created before backup ${anchor.backup.name} (the oldest kept restorable backup) started, and no kept backup replays it`,
      )
    : planned(item, 'not-superseded', `on timeline ${timeline}, created after backup ${anchor.backup.name} (the oldest kept restorable backup) started`);
}

/**
 * The pieces of a span within which decideOne answers alike: cut where a
 * position reaches a backup's start, or a creation time passes now, the
 * WAL window's start or the anchor's start (each a condition that turns
 * true once along the run, found by binary search).
 */
function spanPieces(item: WalItem, ctx: WalDecisionContext, needer: (timeline: number) => AssessedBackup | undefined): WalItem[] {
  const span = item.span!;
  const cuts = new Set<bigint>();
  const cutAt = (holds: (segNo: bigint) => boolean) => {
    const at = firstWhere(span.from, span.to, holds);
    if (at !== undefined && at > span.from) cuts.add(at);
  };
  const created = (segNo: bigint) => spanCreatedMs(span, segNo);
  const position = (segNo: bigint) => spanPosition(span, segNo);
  cutAt((n) => !(created(n) <= ctx.nowMs));
  if (ctx.walFromMs !== undefined) cutAt((n) => created(n) >= ctx.walFromMs!);
  const needs = needer(span.run.timeline);
  if (needs) cutAt((n) => position(n) >= needs.startPosition);
  if (ctx.anchor) {
    if (span.run.timeline === ctx.anchor.timeline) cutAt((n) => position(n) >= ctx.anchor!.startPosition);
    else cutAt((n) => !(created(n) < ctx.anchorTimeMs));
  }
  const starts = [span.from, ...[...cuts].sort((a, b) => (a < b ? -1 : 1))];
  return starts.map((from, i) => spanItem(span.run, from, i + 1 < starts.length ? starts[i + 1] - 1n : span.to, span.segSize));
}

/** `decision` for a piece of a span: standing for all its segments. */
function forPiece(decision: PlannedObject, piece: WalItem): PlannedObject {
  const span = piece.span!;
  if (span.to === span.from) return decision;
  const last = spanItem(span.run, span.to, span.to, span.segSize);
  return { ...decision, through: last.key, count: Number(span.to - span.from) + 1, segmentSize: span.segSize };
}

/**
 * Keep or delete every WAL item; the result is in the items' order, a span
 * giving one planned object per piece (see spanPieces).
 */
export function decideWal(items: readonly WalItem[], ctx: WalDecisionContext): PlannedObject[] {
  const byKey = new Map<string, PlannedObject[]>();
  const keptTimelines = new Set<number>();
  const cache = new Map<number, AssessedBackup | undefined>();
  const needer = (timeline: number) => {
    if (!cache.has(timeline)) cache.set(timeline, neededFrom(ctx.kept, timeline));
    return cache.get(timeline);
  };
  for (const item of items) {
    if (item.kind === 'history') continue;
    const decisions = item.span ? spanPieces(item, ctx, needer).map((piece) => forPiece(decideOne(piece, ctx, needer), piece)) : [decideOne(item, ctx, needer)];
    for (const decision of decisions) if (decision.code !== 'superseded-wal' && item.timeline !== undefined) keptTimelines.add(item.timeline);
    byKey.set(item.key, decisions);
  }
  const lowestKeptBackupTimeline = Math.min(...ctx.kept.map((b) => b.timeline));
  for (const item of items) {
    if (item.kind !== 'history') continue;
    const timeline = item.timeline!;
    let decision = protectedReason(item, ctx);
    if (!decision) {
      if (timeline >= lowestKeptBackupTimeline)
        decision = planned(item, 'timeline-history', `timeline ${timeline} is at or above a kept backup's timeline: recovery may need or probe it`);
      else if (keptTimelines.has(timeline)) decision = planned(item, 'timeline-history', `wal kept on timeline ${timeline} follows it`);
      else decision = planned(item, 'superseded-history', `nothing kept is on timeline ${timeline} and every kept backup is on a higher timeline`);
    }
    byKey.set(item.key, [decision]);
  }
  return items.flatMap((item) => byKey.get(item.key)!);
}
