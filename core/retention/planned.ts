/**
 * Planned objects that stand for several segments (`through`, `count`: the
 * pieces of a run retention decides alike, see wal-decide.ts): how many
 * objects a list stands for, and each object of a range, listed lazily so a
 * range of a million segments is never held as a million objects.
 */
import { walFileNameFromKey, walObjectKey } from '../layout.ts';
import { parseWalSegmentName, walSegmentName } from '../wal/name.ts';
import type { PlannedObject } from './types.ts';

/** How many objects `objects` stand for (a range counts its segments). */
export function plannedCount(objects: Iterable<PlannedObject>): number {
  let n = 0;
  for (const o of objects) n += o.count ?? 1;
  return n;
}

/**
 * Each object `o` stands for, first to last, as a planned object of its own
 * (without `through`, `count` and `segmentSize`); `o` itself when it is one.
 */
export function* plannedObjects(o: PlannedObject): Generator<PlannedObject> {
  if (o.through === undefined || o.count === undefined || o.segmentSize === undefined) {
    yield o;
    return;
  }
  const { through: _through, count, segmentSize, ...one } = o;
  const { timeline, segNo } = parseWalSegmentName(walFileNameFromKey(o.key)!, segmentSize);
  for (let i = 0n; i < BigInt(count); i++) yield { ...one, key: walObjectKey(walSegmentName(timeline, segNo + i, segmentSize)) };
}

/** Every object `objects` stand for, ranges listed one by one (see plannedObjects). */
export function* expandPlanned(objects: Iterable<PlannedObject>): Generator<PlannedObject> {
  for (const o of objects) yield* plannedObjects(o);
}
