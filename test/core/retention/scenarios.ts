/**
 * The repositories the retention tests plan over, each a short history told
 * through CatalogueBuilder (segment n is archived on day n unless stated).
 */
import type { Catalogue } from '../../../core/catalogue/types.ts';
import { backupName } from '../../../core/layout.ts';
import { CatalogueBuilder, dayTime, OTHER_CLUSTER, seg } from './catalogue-builder.ts';

/** The name of the backup starting in segment n of timeline tl. */
export function bk(tl: number, n: number): string {
  return backupName(seg(tl, n));
}

/** The key of the `.backup` file of that backup. */
export function label(tl: number, n: number): string {
  return `wal/${seg(tl, n)}.00000028.backup`;
}

/** One timeline, segments 1..30, backups starting on days 5, 12, 20 and 27. */
export function linear(): CatalogueBuilder {
  const b = new CatalogueBuilder().segments(1, 1, 30);
  for (const n of [5, 12, 20, 27]) b.backup(1, n);
  return b;
}

/**
 * A promotion: timeline 1 to segment 7, the standby promoted in segment 5
 * (timeline 2 from there, 00000002.history, timeline 1's .partial), the old
 * primary archiving 6 and 7 on timeline 1 after the fork and, late, on day
 * 12, segment 8. Backups on timeline 1 at 1 and 3, on timeline 2 at 9.
 */
export function promotion(): Catalogue {
  const b = new CatalogueBuilder().segments(1, 1, 7).partial(1, 5, 5).history(2, 5).segments(2, 5, 14);
  b.wal(seg(1, 8), dayTime(12));
  b.backup(1, 1);
  b.backup(1, 3);
  b.backup(2, 9);
  return b.build();
}

/** Two promotions: timeline 2 from segment 5, timeline 3 from 10; backups at 2 (tl1), 7 (tl2), 12 and 17 (tl3). */
export function twoPromotions(): Catalogue {
  const b = new CatalogueBuilder().segments(1, 1, 5).history(2, 5).segments(2, 5, 10).history(3, 10).segments(3, 10, 20);
  b.backup(1, 2);
  b.backup(2, 7);
  b.backup(3, 12);
  b.backup(3, 17);
  return b.build();
}

/**
 * A recovery to an earlier point: timeline 1 with backups at 5, 10 and 20
 * runs to segment 21; on day 22 the cluster is recovered to a point in
 * segment 12, so timeline 2 starts there (archived days 22 to 30) and gets a
 * backup at segment 16 on day 26 (or at another segment, 10 days after its number).
 */
export function recoveryToThePast(timeline2Backup = 16): Catalogue {
  const b = new CatalogueBuilder()
    .segments(1, 1, 21)
    .history(2, 22)
    .segments(2, 12, 20, { day: (n) => n + 10 });
  for (const n of [5, 10, 20]) b.backup(1, n);
  b.backup(2, timeline2Backup, { day: timeline2Backup + 10 });
  return b.build();
}

/** As recoveryToThePast, but the recovery went back to segment 3, before every backup, and timeline 2 has no backup yet. */
export function recoveryBeforeEveryBackup(): Catalogue {
  const b = new CatalogueBuilder()
    .segments(1, 1, 21)
    .history(2, 22)
    .segments(2, 3, 11, { day: (n) => n + 19 });
  for (const n of [5, 10, 20]) b.backup(1, n);
  return b.build();
}

/**
 * pg_upgrade: the old cluster went through timelines 1 to 3 (forks at 4 and
 * 8) with backups at 10 and 15 on timeline 3, up to segment 20. The new
 * cluster (another system identifier) starts again on timeline 1, continuing
 * the segment numbers from 21, with backups at 22 and 27.
 */
export function pgUpgrade(): Catalogue {
  const b = new CatalogueBuilder().segments(1, 1, 4).history(2, 4).segments(2, 4, 8).history(3, 8).segments(3, 8, 20);
  b.backup(3, 10);
  b.backup(3, 15);
  b.segments(1, 21, 30);
  b.backup(1, 22, { systemIdentifier: OTHER_CLUSTER });
  b.backup(1, 27, { systemIdentifier: OTHER_CLUSTER });
  return b.build();
}

/**
 * A clone recovered from timeline 1 to a point in segment 6 archived into the
 * same repository as timeline 2 for a few days (segments 6 to 9, days 6 to
 * 9), then was dropped; timeline 1 went on, with backups at 5, 10 and 20.
 */
export function abandonedBranch(): Catalogue {
  const b = new CatalogueBuilder().segments(1, 1, 21).history(2, 6).segments(2, 6, 9);
  for (const n of [5, 10, 20]) b.backup(1, n);
  return b.build();
}
