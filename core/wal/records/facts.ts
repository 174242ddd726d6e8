/**
 * What validation learns from a segment's records, for the catalogue:
 * the interface between the record walk and whoever records and sums it
 * (the validate function, the catalogue, `gcwal status`, backup-fetch's
 * target checks). Plain JSON, so it can be stored as it is.
 */
import { formatLsn } from '../lsn.ts';
import type { SegmentEnding, WalkedRecord } from './walker.ts';

/** A named restore point (pg_create_restore_point). */
export interface RestorePoint {
  /** rp_name, as given to pg_create_restore_point (at most 63 bytes) */
  name: string;
  /** rp_time: when it was created, ISO-8601 UTC with microseconds (see formatTimestampTz) */
  time: string;
  /** LSN of the restore point record, `%X/%X` */
  lsn: string;
}

/**
 * What the record walk of one valid segment (or `.partial`) found. Times are
 * PostgreSQL TimestampTz values as formatTimestampTz writes them: ISO-8601
 * UTC with six fractional digits, so they compare as strings and keep the
 * microseconds recovery_target_time is compared at.
 */
export interface SegmentRecordFacts {
  /** records that start in the segment (the one running into the next included), as pg_waldump counts them */
  records: number;
  /**
   * The earliest and latest xact_time of the transaction ends (commit,
   * abort, commit or abort of a prepared transaction) whose records start
   * in the segment, their time within it; absent when there is none. In WAL
   * order the times may step back by a little (concurrent commits), hence
   * earliest and latest. Recovery to a time stops at the first such record
   * after the target: a target is reachable only before the latest one
   * archived.
   */
  firstXactTime?: string;
  lastXactTime?: string;
  /** LSN of the record carrying lastXactTime (the first such, in WAL order) */
  lastXactLsn?: string;
  /** every named restore point in the segment, in WAL order */
  restorePoints: RestorePoint[];
  /** how valid WAL ends in the segment */
  ending: SegmentEnding;
  /** LSN just after the last record that starts in the segment (past its end for 'continues') */
  endLsn: string;
}

/** Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 00:00:00 UTC). */
const POSTGRES_EPOCH_US = 946_684_800_000_000n;

/**
 * A TimestampTz (microseconds since 2000-01-01 UTC) as ISO-8601 UTC with
 * microseconds: `2026-12-07T07:04:20.123456Z`.
 */
export function formatTimestampTz(us: bigint): string {
  const unixUs = us + POSTGRES_EPOCH_US;
  const remainder = ((unixUs % 1_000_000n) + 1_000_000n) % 1_000_000n;
  const seconds = (unixUs - remainder) / 1_000_000n;
  return `${new Date(Number(seconds) * 1000).toISOString().slice(0, 19)}.${remainder.toString().padStart(6, '0')}Z`;
}

/** Folds walked records into SegmentRecordFacts. */
export class SegmentFactsCollector {
  #records = 0;
  // Kept as TimestampTz and formatted once, in facts(): this runs for every record.
  #firstXact: bigint | undefined;
  #lastXact: { time: bigint; lsn: bigint } | undefined;
  readonly #restorePoints: RestorePoint[] = [];

  /** Take one record (the walker's onRecord). */
  readonly add = (record: WalkedRecord): void => {
    this.#records++;
    const event = record.event;
    if (!event) return;
    if (event.kind === 'xact-end') {
      const time = event.time;
      if (this.#firstXact === undefined || time < this.#firstXact) this.#firstXact = time;
      if (this.#lastXact === undefined || time > this.#lastXact.time) this.#lastXact = { time, lsn: record.lsn };
    } else if (event.kind === 'restore-point') {
      this.#restorePoints.push({ name: event.name, time: formatTimestampTz(event.time), lsn: formatLsn(record.lsn) });
    }
  };

  /** The facts, given how the walk ended. */
  facts(ending: SegmentEnding, endLsn: bigint): SegmentRecordFacts {
    const facts: SegmentRecordFacts = { records: this.#records, restorePoints: this.#restorePoints, ending, endLsn: formatLsn(endLsn) };
    if (this.#firstXact !== undefined && this.#lastXact !== undefined) {
      facts.firstXactTime = formatTimestampTz(this.#firstXact);
      facts.lastXactTime = formatTimestampTz(this.#lastXact.time);
      facts.lastXactLsn = formatLsn(this.#lastXact.lsn);
    }
    return facts;
  }
}
