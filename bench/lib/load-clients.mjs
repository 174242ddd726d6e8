/**
 * Child of the functions cold-start benchmark, copied into a function's
 * directory: load the Google client libraries the way the functions load
 * them on their first event, and print one JSON line with the milliseconds
 * each load took in this fresh process.
 *
 *   node load-clients.mjs storage|pubsub|both
 *
 * storage: require() of @google-cloud/storage's CommonJS build and
 * google-auth-library from its dependencies (core/storage/gcs/library.ts, token.ts);
 * pubsub: import() of @google-cloud/pubsub (functions/lib/publisher.ts).
 */
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';

const which = process.argv[2];
if (!['storage', 'pubsub', 'both'].includes(which)) throw new Error('usage: load-clients.mjs storage|pubsub|both');
const out = {};
if (which !== 'pubsub') {
  const started = performance.now();
  createRequire(import.meta.url)('@google-cloud/storage');
  createRequire(import.meta.resolve('@google-cloud/storage'))('google-auth-library');
  out.storage = performance.now() - started;
}
if (which !== 'storage') {
  const started = performance.now();
  await import('@google-cloud/pubsub');
  out.pubsub = performance.now() - started;
}
process.stdout.write(JSON.stringify(out) + '\n');
