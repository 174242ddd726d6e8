/**
 * Entry point of the catalogue benchmark's child process, bundled by
 * bench/catalogue.ts the way a function is: one catalogue operation on a
 * file:// repository, then one JSON line with its CPU time, wall time, the
 * bytes the catalogue object holds afterwards and the process's peak RSS.
 *
 *   catalogue-one.mjs update <repo url> <now ISO> <events JSON>   the functions' commit (absorb in updateCatalogue)
 *   catalogue-one.mjs status <repo url> <now ISO>                 read it and build `gcwal status`'s report
 *   catalogue-one.mjs plan <repo url> <now ISO>                   read it and plan retention (retain-full 7), as prune does
 *   catalogue-one.mjs verdict <repo url> <now ISO> <backup.json key>   validate's work when backup.json lands: its check
 *                                                                  (no part read) and the commit that settles the backup
 *   catalogue-one.mjs full <repo url> <now ISO> <backup.json key>      the check before verdicts: every part read (validateBackup)
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { buildStatusReport } from '../../agent/status/report.ts';
import { readCatalogue, updateCatalogue } from '../../core/catalogue/store.ts';
import type { CatalogueEvent } from '../../core/catalogue/types.ts';
import { CATALOGUE_KEY } from '../../core/layout.ts';
import { FileStorage } from '../../core/storage/file/storage.ts';
import { absorb } from '../../functions/lib/catalogue-outbox.ts';
import { checkBackupForVerdicts, validateBackup } from '../../core/validate/index.ts';
import { planRetention } from '../../core/retention/plan.ts';

const [mode, url, nowIso, eventsJson] = process.argv.slice(2);
if (!url || !nowIso || !['update', 'status', 'verdict', 'full', 'plan'].includes(mode))
  throw new Error('usage: catalogue-one update|status|verdict|full|plan <repo url> <now> [<events json> | <backup.json key>]');
const storage = new FileStorage(url);
const now = new Date(nowIso);
const thresholds = { stallSeconds: 1800, backupMaxAgeSeconds: 8 * 86400, unvalidatedSeconds: 3600, gapGraceSeconds: 300 };
const config = { repo: url, thresholds } as never;

const cpu = process.cpuUsage();
const started = performance.now();
let written = false;
if (mode === 'update') {
  const events = JSON.parse(eventsJson ?? '[]') as CatalogueEvent[];
  const update = await updateCatalogue(storage, (c) => absorb(c, events, now, { config }), { now: () => now });
  written = update.written;
} else if (mode === 'verdict' || mode === 'full') {
  const info = await storage.stat(eventsJson);
  if (!info) throw new Error(`${eventsJson} is not stored`);
  const result = mode === 'verdict' ? await checkBackupForVerdicts(storage, info) : await validateBackup(storage, info);
  if (!result.ok) throw new Error(`${eventsJson}: ${result.problem}`);
  const partSeals = (result as { partSeals?: string[] }).partSeals;
  const event: CatalogueEvent = {
    type: 'validated',
    key: info.key,
    generation: info.generation,
    ok: true,
    time: nowIso,
    backup: result.backup,
    ...(partSeals ? { partSeals } : {}),
  };
  const update = await updateCatalogue(storage, (c) => absorb(c, [event], now, { config }), { now: () => now });
  const settled = update.catalogue.backups[result.backup!.name]?.state;
  if (settled !== 'valid') throw new Error(`the backup is ${settled} after the commit`);
  written = update.written;
} else if (mode === 'plan') {
  const { catalogue } = await readCatalogue(storage);
  const plan = planRetention(catalogue, { retainFull: 7 }, now);
  JSON.stringify(plan);
} else {
  const { catalogue, generation } = await readCatalogue(storage);
  const report = buildStatusReport({ catalogue, source: 'catalogue', location: url, generation }, url, now, thresholds);
  JSON.stringify(report);
}
const wallMs = performance.now() - started;
const used = process.cpuUsage(cpu);
const bytes = (await storage.stat(CATALOGUE_KEY))?.size ?? 0;
const hwm = Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0);
process.stdout.write(JSON.stringify({ cpuMs: (used.user + used.system) / 1000, wallMs, bytes, written, hwmKiB: hwm }) + '\n');
