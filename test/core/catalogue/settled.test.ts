/**
 * Settled backups kept apart (core/catalogue/settled.ts, encoding.ts): the
 * catalogue object holds them in a second gzip member that an update about
 * WAL copies byte for byte, while the changes see their summary.
 */
import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { evaluateAlerts } from '../../../core/alerts/evaluate.ts';
import { applyCatalogueEvents } from '../../../core/catalogue/apply.ts';
import { decodeCatalogueObject } from '../../../core/catalogue/encoding.ts';
import { mergeCatalogue, SettledNeeded, splitCatalogue } from '../../../core/catalogue/settled.ts';
import { CatalogueBatcher, catalogueBytes, parseCatalogueObject, readCatalogue, updateCatalogue } from '../../../core/catalogue/store.ts';
import type { Catalogue, CatalogueEvent } from '../../../core/catalogue/types.ts';
import { CorruptObjectError } from '../../../core/errors.ts';
import { CATALOGUE_KEY } from '../../../core/layout.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import { readSmallObject, writeSmallObject } from '../../../core/storage/objects.ts';
import { at, backup, catalogueOf, deleted, finalized, seg, summary, T0, validated, walEntry } from './fixtures.ts';

const dirs: string[] = [];
test.after.always(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

async function repo(catalogue?: Catalogue): Promise<FileStorage> {
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-settled-'));
  dirs.push(dir);
  const storage = new FileStorage(pathToFileURL(join(dir, 'repo')).href);
  await storage.createRoot();
  if (catalogue) await writeSmallObject(storage, CATALOGUE_KEY, catalogueBytes(catalogue));
  return storage;
}

const thresholds = { stallSeconds: 1e9, backupMaxAgeSeconds: 86_400, unvalidatedSeconds: 1e9, gapGraceSeconds: 300 };

/**
 * Three valid backups of two parts each on timeline 1 (settled), one on
 * timeline 2 with its history (settled), and one still awaiting its parts'
 * verdicts (not settled); a run of WAL.
 */
function archive(): Catalogue {
  const settled = [summary(1, 2, 3, at(10), 2), summary(1, 20, 21, at(100), 2), summary(1, 40, 41, at(200), 2), summary(2, 60, 61, at(300), 2)];
  const pending = summary(2, 80, 81, at(400), 1);
  const c = catalogueOf(
    [walEntry(seg(1, 90), at(390), 'pending'), walEntry('00000002.history', at(250), 'valid', { history: [{ parentTimeline: 1, switchLsn: '0/32000000' }] })],
    [...settled.map((s) => backup(s, 'valid', '5')), { ...backup(pending, 'pending', '5'), awaiting: { checked: at(401), seals: ['seal-0'] } }],
  );
  for (const s of settled)
    for (const key of s.keys.filter((k) => k.endsWith('.tar')))
      c.parts[key] = { key, generation: '5', size: 100, created: s.stopTime, state: 'valid', validated: s.stopTime, seal: 'x' };
  c.parts[pending.keys[0]] = { key: pending.keys[0], generation: '5', size: 100, created: pending.stopTime, state: 'pending' };
  return c;
}

/** The second member's bytes as stored. */
async function settledMember(storage: FileStorage): Promise<Buffer | undefined> {
  return decodeCatalogueObject(await readSmallObject(storage, CATALOGUE_KEY), 'test').settled;
}

test('a catalogue with settled backups is stored in two gzip members, and reads back whole', async (t) => {
  const whole = archive();
  const storage = await repo(whole);
  const body = await readSmallObject(storage, CATALOGUE_KEY);
  const lines = gunzipSync(body).toString('utf8').split('\n');
  t.is(lines.length, 2, 'gunzip prints the main member and the settled member, one json text each');
  const [main, settled] = lines.map((line) => JSON.parse(line));
  t.deepEqual(Object.keys(main.backups), [`base_${seg(2, 80)}`]);
  t.deepEqual(main.settled.backups, Object.keys(whole.backups).slice(0, 4).sort());
  t.is(main.settled.parts, 8);
  t.deepEqual(main.settled.newest, { name: `base_${seg(2, 60)}`, stopTime: at(300) });
  t.deepEqual(main.settled.timelines, { 1: at(10), 2: at(300) });
  t.is(Object.keys(settled.backups).length, 4);
  t.deepEqual((await readCatalogue(storage)).catalogue, whole);
  t.deepEqual(parseCatalogueObject(body, 'test'), whole);
});

test('the alerts of the main member with its summary are those of the whole catalogue', (t) => {
  const whole = archive();
  for (const minutes of [250, 300 + 24 * 60 + 1, 400 + 24 * 60 + 1]) {
    const now = new Date(T0.getTime() + minutes * 60_000);
    t.deepEqual(evaluateAlerts(splitCatalogue(whole).main, now, thresholds), evaluateAlerts(whole, now, thresholds), `at minute ${minutes}`);
  }
  // A day after the newest backup (the pending one), backup-too-old; nothing says no valid backup.
  const late = new Date(T0.getTime() + (400 + 24 * 60 + 1) * 60_000);
  const ids = evaluateAlerts(splitCatalogue(whole).main, late, thresholds).map((a) => a.id);
  t.true(ids.includes('backup-too-old'));
  t.false(ids.includes('no-valid-backup'));
  // Without its history, timeline 2 is known from the settled backup on it (and the pending one).
  const noHistory = archive();
  delete noHistory.wal['00000002.history'];
  const main = splitCatalogue(noHistory).main;
  t.deepEqual(mergeCatalogue(main, splitCatalogue(noHistory).settled), noHistory);
  t.deepEqual(evaluateAlerts(main, late, thresholds), evaluateAlerts(noHistory, late, thresholds));
});

test('an update about wal copies the settled member byte for byte and its change sees only the summary', async (t) => {
  const storage = await repo(archive());
  const before = await settledMember(storage);
  let seen: Catalogue | undefined;
  const events = [validated(`wal/${seg(1, 90)}`, '1', at(395)), finalized(`wal/${seg(1, 91)}`, '1', at(396))];
  const update = await updateCatalogue(
    storage,
    (c) => {
      seen = c;
      return applyCatalogueEvents(c, events, new Date(at(397)));
    },
    { now: () => new Date(at(397)) },
  );
  t.true(update.written);
  t.deepEqual(Object.keys(seen!.backups), [`base_${seg(2, 80)}`]);
  t.is(seen!.settled?.backups.length, 4);
  t.true(before !== undefined && Buffer.compare((await settledMember(storage))!, before) === 0);
  const after = (await readCatalogue(storage)).catalogue;
  t.is(Object.keys(after.backups).length, 5);
  t.is(after.wal[seg(1, 91)].state, 'pending');
});

test("an event about a settled backup's object is applied to the whole catalogue, and a duplicate writes nothing", async (t) => {
  const storage = await repo(archive());
  const key = `backups/base_${seg(1, 2)}/part_00000.tar`;
  const event = deleted(key, '5', at(500));
  // Alone, on the main member, the change cannot apply it.
  t.throws(() => applyCatalogueEvents(splitCatalogue(archive()).main, [event], new Date(at(500))), { instanceOf: SettledNeeded });
  const change = (c: Catalogue) => applyCatalogueEvents(c, [event], new Date(at(500)));
  t.true((await updateCatalogue(storage, change, { now: () => new Date(at(500)) })).written);
  const after = (await readCatalogue(storage)).catalogue;
  t.false(Object.hasOwn(after.parts, key));
  t.deepEqual(after.tombstones[key], { generation: '5', deleted: at(500) });
  t.is(after.backups[`base_${seg(1, 2)}`].state, 'valid');
  const generation = (await storage.stat(CATALOGUE_KEY))!.generation;
  // The same event again (delivered twice), and a late duplicate verdict of another settled part: nothing to write.
  const again = await updateCatalogue(
    storage,
    (c) => applyCatalogueEvents(c, [event, validated(`backups/base_${seg(1, 20)}/part_00001.tar`, '5', at(100))], new Date(at(500))),
    { now: () => new Date(at(501)) },
  );
  t.false(again.written);
  t.is((await storage.stat(CATALOGUE_KEY))!.generation, generation);
});

test('a backup that settles moves to the settled member in the update that settles it', async (t) => {
  const storage = await repo(archive());
  const name = `base_${seg(2, 80)}`;
  const event: CatalogueEvent = validated(`backups/${name}/part_00000.tar`, '5', at(402), true, { seal: 'seal-0' });
  await updateCatalogue(storage, (c) => applyCatalogueEvents(c, [event], new Date(at(402))), { now: () => new Date(at(402)) });
  const lines = gunzipSync(await readSmallObject(storage, CATALOGUE_KEY))
    .toString('utf8')
    .split('\n')
    .map((line) => JSON.parse(line));
  t.deepEqual(lines[0].backups, {});
  t.deepEqual(lines[0].parts, {});
  t.is(lines[1].backups[name].state, 'valid');
  t.deepEqual(lines[0].settled.newest, { name, stopTime: at(400) });
  t.is((await readCatalogue(storage)).catalogue.backups[name].state, 'valid');
});

test('a batch whose member needs the settled backups is committed whole, none of its members failed', async (t) => {
  const storage = await repo(archive());
  const batcher = new CatalogueBatcher(storage, { now: () => new Date(at(500)), windowMs: 50 });
  const key = `backups/base_${seg(1, 20)}/part_00001.tar`;
  const results = await Promise.all([
    batcher.submit((c) => applyCatalogueEvents(c, [finalized(`wal/${seg(1, 92)}`, '1', at(499))], new Date(at(500)))),
    batcher.submit((c) => applyCatalogueEvents(c, [deleted(key, '5', at(500))], new Date(at(500)))),
  ]);
  t.is(results[0].generation, results[1].generation, 'one write');
  const after = (await readCatalogue(storage)).catalogue;
  t.is(after.wal[seg(1, 92)].state, 'pending');
  t.false(Object.hasOwn(after.parts, key));
});

test('a catalogue stored whole (before settled members) is split by its first update', async (t) => {
  const storage = await repo();
  const whole = archive();
  await writeSmallObject(storage, CATALOGUE_KEY, JSON.stringify(whole));
  t.deepEqual((await readCatalogue(storage)).catalogue, whole);
  t.true((await updateCatalogue(storage, (c) => c, { now: () => new Date(at(500)) })).written);
  t.truthy(await settledMember(storage));
  t.deepEqual((await readCatalogue(storage)).catalogue, { ...whole, updated: at(500) });
  t.false((await updateCatalogue(storage, (c) => c, { now: () => new Date(at(501)) })).written);
});

test('a first member whose length does not fit the object is reported as corrupt', (t) => {
  const body = Buffer.from(catalogueBytes(archive()));
  // The GW subfield's length (bytes 18-21, after the header, XLEN and the subfield's id and size).
  body.writeUInt32LE(body.length + 1, 18);
  t.throws(() => decodeCatalogueObject(body, 'test'), { instanceOf: CorruptObjectError, message: /names a first member of/ });
});
