/**
 * Backup verdict benchmark (issue 15 part 2): what the validate function
 * does when backup.json lands, for synthetic backups of 1,000 and 10,000
 * small parts (test/helpers/synthetic-backup.ts) whose parts were already
 * validated (their seals in the catalogue): backup.json's check (one
 * listing, the manifest, no part read) and the catalogue commit that settles
 * the backup. Beside it, the peer: the check before verdicts
 * (validateBackup, every part read in the one invocation). Each operation
 * runs in a fresh process, the bundle of bench/lib/catalogue-one.ts, on a
 * file:// repository: CPU, wall time, peak RSS. Printed, never asserted.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { applyCatalogueEvents } from '../core/catalogue/apply.ts';
import { emptyCatalogue, type CatalogueEvent } from '../core/catalogue/types.ts';
import { CATALOGUE_KEY, Meta } from '../core/layout.ts';
import { FileStorage } from '../core/storage/file/storage.ts';
import { writeSmallObject } from '../core/storage/objects.ts';
import { validateBackupPart } from '../core/validate/index.ts';
import { projectRoot } from '../local/testkit/install.ts';
import { makeSyntheticBackup, writeObjects } from '../local/testkit/synthetic-backup.ts';
import { makeTempDir } from '../local/testkit/tmp.ts';
import { bundleCatalogueOne } from './catalogue.ts';
import type { Cleanups } from './lib/cleanup.ts';
import { fixed, formatTable, median } from './lib/stats.ts';

export interface BackupVerdictBenchOptions {
  /** fresh processes per row */
  rounds: number;
  log: (line: string) => void;
}

const PART_COUNTS = [1000, 10_000];
const SYSID = '7300000000000000001';

interface Measured {
  cpuMs: number;
  wallMs: number;
  hwmKiB: number;
}

export async function runBackupVerdictBench(options: BackupVerdictBenchOptions, cleanups: Cleanups): Promise<string> {
  const dir = await makeTempDir('bench-verdict');
  cleanups.add('the backup verdict bench directory', dir.cleanup);
  const bundle = await bundleCatalogueOne(dir.path);
  const rows: string[][] = [];
  for (const parts of PART_COUNTS) {
    options.log(`building a backup of ${parts} parts`);
    const url = pathToFileURL(path.join(dir.path, `repo-${parts}`)).href;
    const storage = new FileStorage(url);
    await storage.createRoot();
    const backup = await makeSyntheticBackup({ parts, systemIdentifier: SYSID });
    await writeObjects(storage, [...backup.parts, backup.manifest, backup.backupJson], 8);
    // Every part validated as it landed: its verdict and seal in the catalogue.
    const events: CatalogueEvent[] = [];
    for (const part of backup.parts) {
      const info = (await storage.stat(part.key))!;
      const result = await validateBackupPart(storage, info);
      if (!result.ok) throw new Error(`${part.key}: ${result.problem}`);
      events.push({ type: 'finalized', key: info.key, generation: info.generation, size: info.size, created: new Date().toISOString() });
      events.push({
        type: 'validated',
        key: info.key,
        generation: info.generation,
        ok: true,
        time: new Date().toISOString(),
        seal: result.details!.seal as string,
      });
    }
    const catalogue = JSON.stringify(applyCatalogueEvents(emptyCatalogue(new Date()), events, new Date()));
    for (const mode of ['verdict', 'full'] as const) {
      const results: Measured[] = [];
      for (let round = 0; round < options.rounds; round++) {
        // The same catalogue before each run: every commit settles the backup afresh.
        await storage.delete(CATALOGUE_KEY).catch(() => {});
        await writeSmallObject(storage, CATALOGUE_KEY, catalogue, { metadata: { [Meta.codec]: 'none' }, contentType: 'application/json' });
        const { stdout } = await promisify(execFile)(process.execPath, [bundle, mode, url, new Date().toISOString(), backup.backupJson.key], {
          cwd: projectRoot,
          maxBuffer: 1 << 20,
          env: { ...process.env, NODE_PATH: path.join(projectRoot, 'node_modules') },
        });
        results.push(JSON.parse(stdout.trim().split('\n').at(-1)!) as Measured);
      }
      const med = (f: (m: Measured) => number) => median(results.map(f));
      const label =
        mode === 'verdict' ? "from the parts' verdicts (backup.json, listing, manifest; commit)" : 'peer: every part read again (validateBackup; commit)';
      rows.push([parts.toLocaleString('en'), label, fixed(med((m) => m.cpuMs)), fixed(med((m) => m.wallMs)), (med((m) => m.hwmKiB) / 1024).toFixed(0)]);
      options.log(`${parts} parts: ${mode} done`);
    }
  }
  return [
    `## backup verdict (${options.rounds} fresh processes per row, medians)`,
    '',
    'What validate does when backup.json lands, its parts already validated; synthetic parts of 2 small files each (codec none).',
    '',
    formatTable(['parts', 'backup verdict', 'CPU (ms)', 'wall (ms)', 'peak RSS (MiB)'], rows),
  ].join('\n');
}
