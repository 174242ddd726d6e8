import { ExitCode } from '../../core/errors.ts';
import { readClusterInfo } from '../backup/pg-backup.ts';
import { connectPostgres } from '../pg/connect.ts';
import { createRepository } from '../repository/create.ts';
import type { Command } from './types.ts';

/** `gcwal repo-create`: the one command that creates a repository. */
export const repoCreate: Command = {
  name: 'repo-create',
  summary: 'create the repository for this cluster (once, before archiving)',
  usage: 'gcwal repo-create [--force]',
  details: `
Creates the repository GCWAL_REPO names for the cluster at PGHOST/PGPORT
(the same libpq settings as backup-push): connects to the server, reads its
system identifier and WAL segment size, and writes them to gcwal.json. On
file:// it first creates the directory (mode 0700) and any missing parents;
on gs:// the bucket must exist.

Run it once, before setting archive_command: wal-push, backup-push,
wal-fetch, backup-fetch, backup-list, status and delete never create a
repository, and fail with exit 13 where there is none, so that a typo or an
unmounted volume is an error instead of a second archive nobody restores
from.

Running it again for the same cluster changes nothing and exits 0; a
repository of another cluster (or segment size) is refused with exit 4.
A location that already holds files or objects but no gcwal.json is refused
with exit 10 and left alone: it may belong to something else. If it is this
cluster's own archive whose gcwal.json was lost, --force writes gcwal.json
there anyway.`,
  options: {
    force: { type: 'boolean', description: 'create gcwal.json even where files or objects already are (an archive whose gcwal.json was lost)' },
  },
  positionals: 0,
  async run(ctx, _positionals, options) {
    const storage = await ctx.storage();
    const { client, where } = await connectPostgres(ctx.config.pg, { applicationName: 'gcwal repo-create', signal: ctx.signal });
    let cluster;
    try {
      const info = await readClusterInfo(client);
      cluster = { systemIdentifier: info.systemIdentifier, walSegmentSize: info.walSegmentSize };
    } finally {
      await client.end().catch(() => {});
    }
    const result = await createRepository(storage, cluster, { force: options.force === true, signal: ctx.signal });
    const fields = { server: where, systemIdentifier: cluster.systemIdentifier, walSegmentSize: cluster.walSegmentSize };
    if (result.status === 'exists')
      ctx.log.info(`repository ${storage.url} already belongs to this cluster ${cluster.systemIdentifier}; nothing to do`, fields);
    else
      ctx.log.info(`created repository ${storage.url} for cluster ${cluster.systemIdentifier}${result.createdDirectory ? ' (and its directory)' : ''}`, fields);
    return ExitCode.ok;
  },
};
