import path from 'node:path';
import type { Command } from './types.ts';

/** `gcwal local`: run the local GCS stack (emulator + metadata server, and the pipeline) for development and tests. */
export const local: Command = {
  name: 'local',
  summary: 'run a local GCS emulator, metadata server and pipeline for development',
  usage: 'gcwal local [--dir DIR] [--https] [--bucket NAME] [--no-pipeline]',
  details: `
Starts a local Google Cloud Storage emulator that enforces IAM, creates a
bucket, and starts a Compute Engine metadata-server stand-in that hands the
agent's service account (objectCreator + objectViewer on the bucket, never
delete) its access tokens. Unless --no-pipeline, it also runs the pipeline as
in a project: gcloud's Pub/Sub emulator (needs gcloud and java on PATH) with
the topics gcwal-events, gcwal-alerts, gcwal-prune and gcwal-watchdog, and the
validate, catalogue, prune and watchdog functions (from dist/functions, built
by npm run build) under the functions-framework, fed by the bucket's object
events and running as their own service account. Prints the environment the
agent needs as KEY=value lines on stdout (with the pipeline also
PUBSUB_EMULATOR_HOST), then a line "ready", and serves until interrupted
(Ctrl-C or SIGTERM), when it stops everything. Put the printed variables in the
environment of PostgreSQL's archive_command and gcwal uses the emulator
through its normal keyless credentials path. The bucket starts empty: run
gcwal repo-create with those variables and your cluster's PGHOST/PGPORT once
before archiving into it (npm run demo does that for its own cluster). For
development only: tokens and data are local and nothing is durable beyond
--dir.`,
  options: {
    dir: { type: 'string', placeholder: 'DIR', description: "keep the emulator's data in DIR (default: a temporary directory removed on exit)" },
    https: { type: 'boolean', description: 'serve TLS and point the agent at it (sets GCWAL_GCS_CA_FILE)' },
    bucket: { type: 'string', placeholder: 'NAME', description: 'bucket to create (default gcwal-local)' },
    'no-pipeline': { type: 'boolean', description: 'run only the emulator and the metadata server, without Pub/Sub and the functions' },
  },
  positionals: 0,
  async run(ctx, _positionals, options) {
    // Loaded here so the other commands' start-up never pays for the dev stack.
    const { startLocalStack } = await import('../../local/stack.ts');
    const stack = await startLocalStack({
      dir: typeof options.dir === 'string' ? path.resolve(ctx.cwd, options.dir) : undefined,
      https: options.https === true,
      bucket: typeof options.bucket === 'string' ? options.bucket : undefined,
      // gcloud's launcher finds gcloud and java on PATH; the functions get none of this environment.
      pipeline: options['no-pipeline'] === true ? undefined : { toolEnv: { PATH: ctx.env.PATH ?? '/usr/local/bin:/usr/bin:/bin' } },
    });
    try {
      const lines = Object.entries(stack.env).map(([key, value]) => `${key}=${value}`);
      ctx.stdout.write(`${lines.join('\n')}\nready\n`);
      ctx.log.info(
        "local stack running; create the repository with gcwal repo-create (these variables and your cluster's PGHOST/PGPORT), then archive; stop it with Ctrl-C",
        {
          dir: stack.dir,
          bucket: stack.bucket,
          agent: stack.agentIdentity,
          admin: stack.adminIdentity,
          adminToken: stack.adminToken(),
          ...(stack.pipeline
            ? {
                functions: Object.fromEntries(Object.entries(stack.pipeline.functions).map(([name, fn]) => [name, fn.url])),
                functionsIdentity: stack.pipeline.identity,
                alertsSubscription: stack.pipeline.subscriptions.alerts,
                eventsSubscription: stack.pipeline.subscriptions.events,
              }
            : {}),
        },
      );
      await new Promise<void>((resolve) => {
        if (ctx.signal.aborted) resolve();
        else ctx.signal.addEventListener('abort', () => resolve(), { once: true });
      });
    } finally {
      await stack.close();
    }
    ctx.log.info('local stack stopped');
    return 0;
  },
};
