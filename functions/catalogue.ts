/**
 * catalogue: on every object finalized or deleted in the repository, record
 * its arrival or removal in the catalogue and re-evaluate the alerts (a
 * segment deleted behind the pipeline's back is a gap). Validation verdicts
 * reach the catalogue from the validate function; the catalogue's join is
 * order-independent, so it does not matter which event lands first.
 */
import { cloudEvent } from '@google-cloud/functions-framework';
import { catalogueEventFromObjectResource, type StorageObjectResource } from '../core/catalogue/apply.ts';
import type { CatalogueEvent } from '../core/catalogue/types.ts';
import { repositoryLocation } from './lib/location.ts';
import { reportMalformedEvent, type MalformedOutcome } from './lib/malformed.ts';
import { CatalogueOutbox } from './lib/catalogue-outbox.ts';
import { createRuntime, lazyRuntime, type Runtime } from './lib/runtime.ts';
import { parseStorageEvent, type IncomingEvent, type StorageObjectEvent } from './lib/storage-event.ts';

export type CatalogueOutcome = MalformedOutcome | { status: 'ignored'; reason: string } | { status: 'recorded'; event: CatalogueEvent; changed: boolean };

/**
 * Build the handler (see makeValidateHandler for `runtime`). Rejects on
 * storage or Pub/Sub errors so the event is delivered again; a malformed
 * event is reported and acknowledged (lib/malformed.ts).
 */
export function makeCatalogueHandler(runtime: () => Runtime): (event: IncomingEvent) => Promise<CatalogueOutcome> {
  let outbox: CatalogueOutbox | undefined;
  return async (event) => {
    const rt = runtime();
    outbox ??= new CatalogueOutbox(rt);
    const location = repositoryLocation(rt.config.repo);
    let ev: StorageObjectEvent | undefined;
    try {
      ev = parseStorageEvent(event, location);
    } catch (err) {
      return reportMalformedEvent(rt, outbox, 'catalogue', event, err);
    }
    if (!ev) return ignored(rt, event, 'not an object event in the repository');
    const change = catalogueEventFromObjectResource(ev.kind, ev.resource as StorageObjectResource, location.prefix, ev.time);
    if (!change) return ignored(rt, event, `${ev.key} is not catalogued`);
    const update = await outbox.record([change]);
    const changed = update.written;
    rt.log.log('DEBUG', `catalogued ${ev.kind} ${ev.key}`, { key: ev.key, generation: ev.generation, changed });
    return { status: 'recorded', event: change, changed };
  };
}

function ignored(rt: Runtime, event: IncomingEvent, reason: string): CatalogueOutcome {
  rt.log.log('DEBUG', `event ${event.id} ignored: ${reason}`);
  return { status: 'ignored', reason };
}

cloudEvent('catalogue', makeCatalogueHandler(lazyRuntime(() => createRuntime(process.env))));
