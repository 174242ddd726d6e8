/**
 * Reading the records of a WAL segment (see README.md): the walker, and the
 * facts validation keeps from it.
 */
export { SegmentRecordWalker, type SegmentEnding, type SegmentWalk, type SegmentWalkSetup, type WalkedRecord } from './walker.ts';
export { formatTimestampTz, SegmentFactsCollector, type RestorePoint, type SegmentRecordFacts } from './facts.ts';
export type { RecordEvent } from './decode.ts';
