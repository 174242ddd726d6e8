/**
 * Run the GCS emulator on its own for manual poking:
 *   node --import=tsx local/gcs/main.ts --dir D [--port P] [--https] [--https-port P] [--bucket NAME]...
 * Prints the URLs (and the certificate path with --https), then serves until
 * SIGINT or SIGTERM. Auth is not enforced. One mutation per object name per
 * second, as on Google, unless GCWAL_GCS_OBJECT_RATE_LIMIT_MS says otherwise
 * (`off`, or milliseconds).
 */
import { parseArgs } from 'node:util';
import { RATE_LIMIT_ENV, rateLimitFromEnv } from './rate-limit.ts';
import { startGcsEmulator } from './server.ts';

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      dir: { type: 'string' },
      port: { type: 'string' },
      https: { type: 'boolean', default: false },
      'https-port': { type: 'string' },
      bucket: { type: 'string', multiple: true },
    },
    strict: true,
  });
  if (!values.dir) throw new Error('--dir is required: the state directory (objects persist there)');
  const port = values.port === undefined ? 0 : Number(values.port);
  const httpsPort = values['https-port'] === undefined ? 0 : Number(values['https-port']);
  if (!Number.isInteger(port) || !Number.isInteger(httpsPort)) throw new Error('--port and --https-port take a port number');
  const emulator = await startGcsEmulator({
    dir: values.dir,
    port,
    https: values.https || values['https-port'] !== undefined ? { port: httpsPort } : undefined,
    objectRateLimitMs: rateLimitFromEnv(process.env[RATE_LIMIT_ENV]),
  });
  for (const bucket of values.bucket ?? []) await emulator.createBucket(bucket);
  console.log(`gcs emulator listening on ${emulator.url}`);
  if (emulator.httpsUrl) console.log(`https: ${emulator.httpsUrl} (certificate ${emulator.caCertPath})`);
  console.log(`STORAGE_EMULATOR_HOST=${emulator.url}`);
  const stop = () => {
    void emulator.close().then(() => console.log('gcs emulator stopped'));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main(process.argv.slice(2)).catch((err: Error) => {
  console.error(`gcs emulator: ${err.message}`);
  process.exitCode = 1;
});
