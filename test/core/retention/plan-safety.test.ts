import { CatalogueBuilder, dayTime, edited, seg, segKeys } from './catalogue-builder.ts';
import { meta, runRows, wal } from './check.ts';
import { bk, label, linear, pgUpgrade } from './scenarios.ts';

// What retention never deletes, whatever the policy says.
runRows([
  // another cluster
  {
    title: "after pg_upgrade the new cluster's backups and their wal are never deleted",
    catalogue: pgUpgrade(),
    policy: { retainFull: 1 },
    kept: [bk(3, 15), bk(1, 22), bk(1, 27)],
    deleted: [bk(3, 10)],
    deletedWal: [...segKeys(1, 1, 4), ...segKeys(2, 4, 8), ...segKeys(3, 8, 14), label(3, 10)],
    codes: {
      [meta(bk(1, 22))]: 'other-cluster',
      [meta(bk(1, 27))]: 'other-cluster',
      [meta(bk(3, 15))]: 'retain-full',
      [wal(seg(1, 21))]: 'not-superseded',
      [wal(seg(1, 22))]: 'needed-by-backup',
      'wal/00000002.history': 'timeline-history',
      'wal/00000003.history': 'timeline-history',
    },
    window: { backup: bk(3, 15), timeline: 3 },
    warnings: [/^backup base_000000010000000000000016 belongs to another cluster \(system identifier 7398765432109876543\)/],
  },
  {
    title: "after pg_upgrade a days window that only the new cluster's backups fill still keeps the old cluster's newest",
    catalogue: pgUpgrade(),
    policy: { retainDays: 2 },
    kept: [bk(3, 15), bk(1, 22), bk(1, 27)],
    deleted: [bk(3, 10)],
    deletedWal: [...segKeys(1, 1, 4), ...segKeys(2, 4, 8), ...segKeys(3, 8, 14), label(3, 10)],
    warnings: [/another cluster/],
  },
  {
    title: "without a system identifier in the catalogue the oldest backup's cluster is the repository's",
    catalogue: (() => {
      const c = pgUpgrade();
      delete c.systemIdentifier;
      return c;
    })(),
    policy: { retainFull: 1 },
    kept: [bk(3, 15), bk(1, 22), bk(1, 27)],
    deleted: [bk(3, 10)],
    deletedWal: [...segKeys(1, 1, 4), ...segKeys(2, 4, 8), ...segKeys(3, 8, 14), label(3, 10)],
    warnings: [/^the catalogue has no system identifier yet; the oldest backup's \(7312345678901234567\) is taken/, /another cluster/],
  },
  // clock skew
  {
    title: 'a backup with times after now is kept and counted as the newest, not as a restorable one',
    catalogue: (() => {
      const b = linear();
      b.backup(1, 29, { day: 40 });
      return b.build();
    })(),
    policy: { retainFull: 1 },
    kept: [bk(1, 27), bk(1, 29)],
    deleted: [bk(1, 5), bk(1, 12), bk(1, 20)],
    deletedWal: [...segKeys(1, 1, 26), label(1, 5), label(1, 12), label(1, 20)],
    codes: { [meta(bk(1, 29))]: 'future', [label(1, 29)]: 'future', [meta(bk(1, 27))]: 'retain-full' },
  },
  {
    title: 'wal created after now is kept though it sits before the oldest kept backup',
    catalogue: edited(linear(), (c) => {
      c.wal[seg(1, 3)].created = dayTime(35);
    }),
    policy: { retainFull: 1 },
    kept: [bk(1, 27)],
    deleted: [bk(1, 5), bk(1, 12), bk(1, 20)],
    deletedWal: [...segKeys(1, 1, 26).filter((k) => k !== wal(seg(1, 3))), label(1, 5), label(1, 12), label(1, 20)],
    codes: { [wal(seg(1, 3))]: 'future' },
  },
  {
    title: 'a backup part created after now keeps an older backup whole',
    catalogue: edited(linear(), (c) => {
      c.parts[`backups/${bk(1, 5)}/part_00001.tar`].created = dayTime(40);
    }),
    policy: { retainFull: 1 },
    kept: [bk(1, 5), bk(1, 27)],
    deleted: [bk(1, 12), bk(1, 20)],
    deletedWal: segKeys(1, 1, 4),
    codes: { [meta(bk(1, 5))]: 'future', [`backups/${bk(1, 5)}/part_00000.tar`]: 'future' },
  },
  // the only valid backup
  {
    title: 'the only restorable backup is kept though the policy would keep only newer ones',
    catalogue: edited(linear(), (c) => {
      for (const n of [12, 20, 27]) c.backups[bk(1, n)].state = 'corrupt';
    }),
    policy: { retainFull: 1 },
    kept: [bk(1, 5), bk(1, 12), bk(1, 20), bk(1, 27)],
    deleted: [],
    deletedWal: segKeys(1, 1, 4),
    codes: { [meta(bk(1, 5))]: 'retain-full', [meta(bk(1, 12))]: 'newer-than-restorable' },
    warnings: [],
  },
  {
    title: 'nothing is deleted when no backup is valid',
    catalogue: edited(linear(), (c) => {
      for (const b of Object.values(c.backups)) b.state = 'corrupt';
    }),
    policy: { retainFull: 1 },
    kept: [bk(1, 5), bk(1, 12), bk(1, 20), bk(1, 27)],
    deleted: [],
    deletedWal: [],
    codes: { [wal(seg(1, 1))]: 'no-restorable-backup', [meta(bk(1, 5))]: 'no-restorable-backup' },
    window: {},
    warnings: [/^nothing is deleted: no backup the policy would keep is valid/],
  },
  {
    title: 'nothing is deleted from a repository without backups',
    catalogue: new CatalogueBuilder().segments(1, 1, 10).build(),
    policy: { retainDays: 1 },
    kept: [],
    deleted: [],
    deletedWal: [],
    warnings: [/^nothing is deleted: the catalogue has no backups$/],
  },
  {
    title: 'nothing is deleted while the catalogue does not know the segment size',
    catalogue: (() => {
      const b = new CatalogueBuilder({ walSegmentSize: null }).segments(1, 1, 30);
      for (const n of [5, 12, 20, 27]) b.backup(1, n);
      return b.build();
    })(),
    policy: { retainFull: 1 },
    kept: [bk(1, 5), bk(1, 12), bk(1, 20), bk(1, 27)],
    deleted: [],
    deletedWal: [],
    warnings: [/segment size/, /^nothing is deleted/],
  },
  // incomplete WAL
  {
    title: 'a backup with a segment missing between its start and stop does not count as restorable',
    catalogue: (() => {
      const b = new CatalogueBuilder().segments(1, 1, 30).without(seg(1, 28));
      for (const n of [5, 12, 20]) b.backup(1, n);
      b.backup(1, 27, { stop: 28 });
      return b.build();
    })(),
    policy: { retainFull: 1 },
    kept: [bk(1, 20), bk(1, 27)],
    deleted: [bk(1, 5), bk(1, 12)],
    deletedWal: [...segKeys(1, 1, 19), label(1, 5), label(1, 12)],
    codes: { [meta(bk(1, 27))]: 'newer-than-restorable', [meta(bk(1, 20))]: 'retain-full' },
    window: { backup: bk(1, 20) },
  },
  {
    title: 'a backup whose start segment is not validated yet does not count as restorable',
    catalogue: edited(linear(), (c) => {
      c.wal[seg(1, 27)].state = 'pending';
    }),
    policy: { retainFull: 1 },
    kept: [bk(1, 20), bk(1, 27)],
    deleted: [bk(1, 5), bk(1, 12)],
    deletedWal: [...segKeys(1, 1, 19), label(1, 5), label(1, 12)],
    codes: { [meta(bk(1, 27))]: 'newer-than-restorable', [wal(seg(1, 27))]: 'pending' },
  },
  {
    title: 'a backup whose start segment is corrupt does not count as restorable',
    catalogue: edited(linear(), (c) => {
      c.wal[seg(1, 27)].state = 'corrupt';
    }),
    policy: { retainFull: 1 },
    kept: [bk(1, 20), bk(1, 27)],
    deleted: [bk(1, 5), bk(1, 12)],
    deletedWal: [...segKeys(1, 1, 19), label(1, 5), label(1, 12)],
    codes: { [wal(seg(1, 27))]: 'needed-by-backup' },
  },
  {
    title: "a gap after a backup's stop does not stop it counting as restorable",
    catalogue: linear().without(seg(1, 29)).build(),
    policy: { retainFull: 1 },
    kept: [bk(1, 27)],
    deleted: [bk(1, 5), bk(1, 12), bk(1, 20)],
    deletedWal: [...segKeys(1, 1, 26), label(1, 5), label(1, 12), label(1, 20)],
  },
  // pending
  {
    title: 'pending objects are never deleted, and a backup with a pending part is kept whole',
    catalogue: edited(linear(), (c) => {
      c.wal[seg(1, 2)].state = 'pending';
      c.parts[`backups/${bk(1, 5)}/part_00000.tar`].state = 'pending';
    }),
    policy: { retainFull: 1 },
    kept: [bk(1, 5), bk(1, 27)],
    deleted: [bk(1, 12), bk(1, 20)],
    deletedWal: [wal(seg(1, 1)), ...segKeys(1, 3, 4)],
    codes: { [wal(seg(1, 2))]: 'pending', [meta(bk(1, 5))]: 'pending', [wal(seg(1, 5))]: 'needed-by-backup', [label(1, 12)]: 'needed-by-backup' },
  },
  {
    title: 'a pending backup older than the kept ones is kept',
    catalogue: edited(linear(), (c) => {
      c.backups[bk(1, 12)].state = 'pending';
    }),
    policy: { retainFull: 1 },
    kept: [bk(1, 12), bk(1, 27)],
    deleted: [bk(1, 5), bk(1, 20)],
    deletedWal: [...segKeys(1, 1, 11), label(1, 5)],
    codes: { [meta(bk(1, 12))]: 'pending' },
  },
  {
    title: 'parts under a folder without backup.json are left alone',
    catalogue: edited(linear(), (c) => {
      const key = 'backups/base_00000001000000000000001D/part_00000.tar';
      c.parts[key] = { key, generation: '7', size: 1, created: dayTime(29), state: 'valid' };
      const old = 'backups/base_000000010000000000000002/part_00000.tar';
      c.parts[old] = { key: old, generation: '8', size: 1, created: dayTime(2), state: 'valid' };
    }),
    policy: { retainFull: 1 },
    kept: [bk(1, 27)],
    deleted: [bk(1, 5), bk(1, 12), bk(1, 20)],
    deletedWal: [...segKeys(1, 1, 26), label(1, 5), label(1, 12), label(1, 20)],
    codes: { 'backups/base_00000001000000000000001D/part_00000.tar': 'orphan-part', 'backups/base_000000010000000000000002/part_00000.tar': 'orphan-part' },
  },
  {
    title: 'a key a backup lists outside its folder is never deleted with it',
    catalogue: edited(linear(), (c) => {
      c.backups[bk(1, 5)].keys.push(`wal/${seg(1, 29)}`);
    }),
    policy: { retainFull: 1 },
    kept: [bk(1, 27)],
    deleted: [bk(1, 5), bk(1, 12), bk(1, 20)],
    deletedWal: [...segKeys(1, 1, 26), label(1, 5), label(1, 12), label(1, 20)],
    codes: { [wal(seg(1, 29))]: 'needed-by-backup' },
    warnings: [/^backup base_000000010000000000000005 lists keys outside its folder, left alone: wal\/00000001000000000000001D$/],
  },
  {
    title: 'names gcwal does not recognise under wal/ are left alone',
    catalogue: edited(linear(), (c) => {
      c.wal.README = { name: 'README', generation: '9', size: 1, created: dayTime(1), state: 'valid' };
      // a low part of 0x100 cannot exist with 16 MiB segments
      c.wal['000000010000000000000100'] = { name: '000000010000000000000100', generation: '10', size: 1, created: dayTime(1), state: 'valid' };
    }),
    policy: { retainFull: 1 },
    kept: [bk(1, 27)],
    deleted: [bk(1, 5), bk(1, 12), bk(1, 20)],
    deletedWal: [...segKeys(1, 1, 26), label(1, 5), label(1, 12), label(1, 20)],
    codes: { 'wal/README': 'unrecognised', 'wal/000000010000000000000100': 'unrecognised' },
  },
]);
