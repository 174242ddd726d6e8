/**
 * All four functions in one module, for running them together locally
 * (`functions-framework --source=dist/functions/index.mjs --target=validate`).
 * Deployed functions are bundled one per file (scripts/build-functions.mjs).
 */
export { makeValidateHandler } from './validate.ts';
export { makeCatalogueHandler } from './catalogue.ts';
export { makePruneHandler } from './prune.ts';
export { makeWatchdogHandler } from './watchdog.ts';
