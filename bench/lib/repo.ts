/**
 * The benches' repositories, created as `gcwal repo-create` would for the
 * cluster that wrote a segment (no push creates a repository), with the
 * identity read from that segment's long page header.
 */
import { open } from 'node:fs/promises';
import { createRepositoryIdentity } from '../../core/repository.ts';
import { FileStorage } from '../../core/storage/file/storage.ts';
import { openStorage } from '../../core/storage/open.ts';
import { parseLongPageHeader } from '../../core/wal/header.ts';
import { execOk } from '../../local/testkit/exec.ts';
import { runningAsRoot } from '../../local/testkit/users.ts';

/**
 * Create the repository at `url` for the cluster of `segment`; `env` gives
 * the gs:// endpoint, CA file and metadata server as gcwal would read them.
 * A file:// directory is handed to postgres when running as root.
 */
export async function createRepoForSegment(url: string, segment: string, env: Readonly<Record<string, string | undefined>> = {}): Promise<void> {
  const file = await open(segment, 'r');
  const head = Buffer.alloc(8192);
  try {
    await file.read(head, 0, head.length, 0);
  } finally {
    await file.close();
  }
  const header = parseLongPageHeader(head, segment);
  const storage = await openStorage(url, {
    gcs: {
      endpoint: env.GCWAL_GCS_ENDPOINT ?? env.STORAGE_EMULATOR_HOST,
      caFile: env.GCWAL_GCS_CA_FILE,
      metadataServer: env.GCE_METADATA_HOST ? { host: env.GCE_METADATA_HOST } : undefined,
    },
  });
  if (storage instanceof FileStorage) await storage.createRoot();
  await createRepositoryIdentity(storage, { systemIdentifier: header.systemIdentifier, walSegmentSize: header.segmentSize });
  if (storage instanceof FileStorage && runningAsRoot()) await execOk('chown', ['-R', 'postgres:postgres', storage.root]);
}
