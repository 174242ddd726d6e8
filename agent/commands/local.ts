import path from 'node:path';
import type { Command } from './types.ts';

/** `gcwal local`: run the local GCS stack (emulator + metadata server) for development and tests. */
export const local: Command = {
  name: 'local',
  summary: 'run a local GCS emulator and metadata server for development',
  usage: 'gcwal local [--dir DIR] [--https] [--bucket NAME]',
  details: `
Starts a local Google Cloud Storage emulator that enforces IAM, creates a
bucket, and starts a Compute Engine metadata-server stand-in that hands the
agent's service account (objectCreator + objectViewer on the bucket, never
delete) its access tokens. Prints the environment the agent needs as KEY=value
lines on stdout, then a line "ready", and serves until interrupted (Ctrl-C or
SIGTERM), when it stops both servers. Put the printed variables in the
environment of PostgreSQL's archive_command and gcwal uses the emulator
through its normal keyless credentials path. For development only: tokens
and data are local and nothing is durable beyond --dir.`,
  options: {
    dir: { type: 'string', placeholder: 'DIR', description: 'keep the emulator\'s data in DIR (default: a temporary directory removed on exit)' },
    https: { type: 'boolean', description: 'serve TLS and point the agent at it (sets NODE_EXTRA_CA_CERTS)' },
    bucket: { type: 'string', placeholder: 'NAME', description: 'bucket to create (default gcwal-local)' },
  },
  positionals: 0,
  async run(ctx, _positionals, options) {
    // Loaded here so the other commands' start-up never pays for the dev stack.
    const { startLocalStack } = await import('../../local/stack.ts');
    const stack = await startLocalStack({
      dir: typeof options.dir === 'string' ? path.resolve(ctx.cwd, options.dir) : undefined,
      https: options.https === true,
      bucket: typeof options.bucket === 'string' ? options.bucket : undefined,
    });
    try {
      const lines = Object.entries(stack.env).map(([key, value]) => `${key}=${value}`);
      ctx.stdout.write(`${lines.join('\n')}\nready\n`);
      ctx.log.info('local stack running; stop it with Ctrl-C', {
        dir: stack.dir,
        bucket: stack.bucket,
        agent: stack.agentIdentity,
        admin: stack.adminIdentity,
        adminToken: stack.adminToken(),
      });
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
