/**
 * validate: on every object finalized in the repository, stream it through
 * its codec and check it (core/validate), record the outcome in the catalogue,
 * publish it on the events topic, and alert when it is bad. A duplicate or
 * late event is harmless: an object that is gone or was replaced is skipped,
 * and recording the same outcome twice changes nothing.
 */
import { cloudEvent } from '@google-cloud/functions-framework';
import { classifyCatalogueKey } from '../core/catalogue/keys.ts';
import type { CatalogueEvent, CatalogueHistoryLine } from '../core/catalogue/types.ts';
import { readRepositoryIdentity, type RepositoryIdentity } from '../core/repository.ts';
import type { ObjectInfo, Storage } from '../core/storage/types.ts';
import {
  checkBackupForVerdicts,
  validateBackupPart,
  validateWalObject,
  recordFactsOf,
  type ValidationResult,
  type WalExpectations,
} from '../core/validate/index.ts';
import type { BackupSummaryForCatalogue } from '../core/catalogue/types.ts';
import type { PipelineEventMessage } from '../core/alerts/types.ts';
import { repositoryLocation } from './lib/location.ts';
import { reportMalformedEvent, type MalformedOutcome } from './lib/malformed.ts';
import { CatalogueOutbox } from './lib/catalogue-outbox.ts';
import { createRuntime, lazyRuntime, type Runtime } from './lib/runtime.ts';
import { parseStorageEvent, type IncomingEvent, type StorageObjectEvent } from './lib/storage-event.ts';

/** What one validate invocation did, for tests and logs. */
export type ValidateOutcome =
  | MalformedOutcome
  | { status: 'ignored'; reason: string }
  | { status: 'validated'; key: string; generation: string; result: ValidationResult };

/**
 * Build the handler. `runtime` is called on each event and should return the
 * same Runtime every time (see lazyRuntime). Rejects on storage, auth or
 * Pub/Sub errors so the event is delivered again; never for bad content, nor
 * for a malformed event (reported, see lib/malformed.ts).
 */
export function makeValidateHandler(runtime: () => Runtime): (event: IncomingEvent) => Promise<ValidateOutcome> {
  let outbox: CatalogueOutbox | undefined;
  // gcwal.json is create-only and never rewritten: once read, an instance keeps it.
  let identity: RepositoryIdentity | undefined;
  return async (event) => {
    const rt = runtime();
    outbox ??= new CatalogueOutbox(rt);
    let ev: StorageObjectEvent | undefined;
    try {
      ev = parseStorageEvent(event, repositoryLocation(rt.config.repo));
    } catch (err) {
      return reportMalformedEvent(rt, outbox, 'validate', event, err);
    }
    if (ev?.kind !== 'finalized') return ignored(rt, event, 'not an object finalized in the repository');
    const what = classifyCatalogueKey(ev.key);
    if (!what || what.kind === 'backup-manifest') return ignored(rt, event, `${ev.key} is checked with its backup, or not catalogued`);
    const storage = await rt.storage();
    const info = await storage.stat(ev.key);
    if (!info) return ignored(rt, event, `${ev.key} is gone`);
    if (BigInt(info.generation) !== BigInt(ev.generation))
      return ignored(rt, event, `${ev.key} generation ${ev.generation} was replaced by ${info.generation}`);

    const started = Date.now();
    identity ??= await readRepositoryIdentity(storage);
    const expect: WalExpectations = identity ? { systemIdentifier: identity.systemIdentifier, walSegmentSize: identity.walSegmentSize } : {};
    const result = await validateObject(storage, info, what.kind, expect);
    const durationMs = Date.now() - started;
    if (result.details?.decoderUnavailable) {
      // Says nothing about the object: leave it pending (the watchdog alerts if it stays so) and fail loudly.
      rt.log.log('ERROR', `cannot validate ${ev.key}: ${result.problem}`, { key: ev.key });
      return { status: 'validated', key: ev.key, generation: ev.generation, result };
    }
    await outbox.record(catalogueEvents(ev, result, rt.now()), identity);
    const message: PipelineEventMessage = {
      format: 1,
      kind: 'validated',
      repository: rt.config.repo,
      key: ev.key,
      generation: ev.generation,
      ok: result.ok,
      ...(result.problem ? { problem: result.problem } : {}),
      time: rt.now().toISOString(),
      ...(result.rawSize !== undefined ? { rawSize: result.rawSize } : {}),
      durationMs,
    };
    await rt.publisher.publishJson(rt.config.eventsTopic, message, { kind: 'validated', ok: String(result.ok), key: ev.key });
    const warning = typeof result.details?.warning === 'string' ? result.details.warning : undefined;
    if (result.ok && warning) rt.log.log('WARNING', `validated ${ev.key}: ${warning}`, { key: ev.key, generation: ev.generation, durationMs });
    else
      rt.log.log(result.ok ? 'INFO' : 'ERROR', result.ok ? `validated ${ev.key}` : `${ev.key} failed validation: ${result.problem}`, {
        key: ev.key,
        generation: ev.generation,
        durationMs,
      });
    return { status: 'validated', key: ev.key, generation: ev.generation, result };
  };
}

/** What validating one object yields for the catalogue. */
type ObjectResult = ValidationResult & { backup?: BackupSummaryForCatalogue; partSeals?: string[] };

/**
 * Each invocation reads at most one object's content: a segment, one part
 * (its verdict, with its seal, goes to the catalogue), or backup.json and the
 * manifest (whose check gives the seals the parts must carry; the catalogue
 * settles the backup when the last verdict is in, core/catalogue/backup-verdicts.ts).
 */
function validateObject(storage: Storage, info: ObjectInfo, kind: 'wal' | 'part' | 'backup-meta', expect: WalExpectations): Promise<ObjectResult> {
  switch (kind) {
    case 'wal':
      return validateWalObject(storage, info, expect);
    case 'part':
      return validateBackupPart(storage, info);
    case 'backup-meta':
      return checkBackupForVerdicts(storage, info, expect);
  }
}

/** The catalogue events one validation yields: the object's arrival and its verdict. */
export function catalogueEvents(ev: StorageObjectEvent, result: ObjectResult, now: Date): CatalogueEvent[] {
  const details = result.details ?? {};
  const records = recordFactsOf(result);
  const validated: CatalogueEvent = {
    type: 'validated',
    key: ev.key,
    generation: ev.generation,
    ok: result.ok,
    time: now.toISOString(),
    ...(result.problem ? { problem: result.problem } : {}),
    ...(result.backup ? { backup: result.backup } : {}),
    // A part's verdict for its backup, and the verdicts backup.json's check expects of its parts.
    ...(result.ok && typeof details.seal === 'string' ? { seal: details.seal } : {}),
    ...(result.ok && result.partSeals ? { partSeals: result.partSeals } : {}),
    // Only a segment that passed says which cluster and segment size the archive holds.
    ...(result.ok && typeof details.systemIdentifier === 'string' ? { systemIdentifier: details.systemIdentifier } : {}),
    ...(result.ok && typeof details.walSegmentSize === 'number' ? { walSegmentSize: details.walSegmentSize } : {}),
    ...(result.ok && Array.isArray(details.history) ? { history: details.history as CatalogueHistoryLine[] } : {}),
    // What the record walk found: when transactions ended, the restore points.
    ...(records ? { records } : {}),
  };
  const events: CatalogueEvent[] = [validated];
  // backup.json is catalogued through its verdict; parts and WAL also as arrivals.
  if (classifyCatalogueKey(ev.key)?.kind !== 'backup-meta')
    events.unshift({ type: 'finalized', key: ev.key, generation: ev.generation, size: ev.size, created: ev.created });
  return events;
}

function ignored(rt: Runtime, event: IncomingEvent, reason: string): ValidateOutcome {
  rt.log.log('DEBUG', `event ${event.id} ignored: ${reason}`);
  return { status: 'ignored', reason };
}

cloudEvent('validate', makeValidateHandler(lazyRuntime(() => createRuntime(process.env))));
