/**
 * `npm run demo`: the main job on the embedded default. A throwaway
 * PostgreSQL cluster is archived into Cloud Storage — the local stack's GCS
 * emulator, reached through gs:// with a token from the metadata-server
 * stand-in, the same code path and keyless auth as production — backed up,
 * written to, "accidentally" emptied, and restored to the moment before the
 * accident into a second data directory; the data is compared and everything
 * is cleaned up. Along the way the serverless pipeline (Pub/Sub emulator and
 * the four functions, local/pipeline.ts) validates every archived object,
 * `gcwal status` reports from its catalogue, and a segment damaged on purpose
 * after the restore raises a CRITICAL alert, read from the alerts topic by a
 * real Pub/Sub subscriber. Exits non-zero if the restored data does not
 * match, the pipeline does not validate the archive in time, or the alert
 * does not arrive. Without gcloud's Pub/Sub emulator the pipeline's steps are
 * skipped, and the output says so.
 */
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCluster, startClusterFromDirectory, type Cluster } from './testkit/cluster.ts';
import { installAgent } from './testkit/install.ts';
import { runGcwal } from './testkit/run.ts';
import { makeTempDir } from './testkit/tmp.ts';
import { backupStartSegment, corruptionAlert, flipBytes, startDemoStack, waitUntilValidated } from './demo-pipeline.ts';
import type { LocalStack } from './stack.ts';

const PREFIX = 'demo-cluster/';
/** bounds on the pipeline's steps: generous for a loaded machine, short enough that a broken pipeline fails the demo */
const VALIDATE_WITHIN_MS = 60_000;
const ALERT_WITHIN_MS = 60_000;
/** the lines of `gcwal status` the demo shows */
const STATUS_EXCERPT = /^(catalogue|timeline| {2}restorable| {15}to | {2}wal |backups| {2}NAME| {2}base_|alerts)/;

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
let stepNo = 0;
function step(text: string): void {
  console.log(`\n${bold(`${++stepNo}. ${text}`)}`);
}
function say(text: string): void {
  console.log(`   ${text}`);
}

/** Objects and stored bytes under the stack's prefix, listed as an admin would. */
async function bucketUsage(stack: LocalStack, prefix: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  let pageToken = '';
  do {
    const res = await fetch(
      `${stack.emulator.url}/storage/v1/b/${stack.bucket}/o?prefix=${encodeURIComponent(prefix)}${pageToken ? `&pageToken=${pageToken}` : ''}`,
      { headers: { Authorization: `Bearer ${stack.adminToken()}` } },
    );
    const body = (await res.json()) as { items?: { size: string }[]; nextPageToken?: string };
    for (const item of body.items ?? []) {
      files++;
      bytes += Number(item.size);
    }
    pageToken = body.nextPageToken ?? '';
  } while (pageToken);
  return { files, bytes };
}

async function fingerprint(cluster: Cluster): Promise<{ rows: number; md5: string }> {
  const [r] = await cluster.query<{ rows: string; md5: string }>(
    "SELECT count(*) AS rows, md5(coalesce(string_agg(id || ':' || customer || ':' || amount, ',' ORDER BY id), '')) AS md5 FROM orders",
  );
  return { rows: Number(r.rows), md5: r.md5 };
}

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function main(): Promise<number> {
  const started = Date.now();
  const agent = await installAgent();
  const work = await makeTempDir('demo', { owner: 'postgres' });
  const clusters: Cluster[] = [];
  let stack: LocalStack | undefined;
  try {
    console.log(bold('gcwal demo: archive, back up, and restore a PostgreSQL cluster to a point in time'));
    say(`working in ${work.path} (removed at the end)`);

    step('Start the local Google Cloud stand-ins: a GCS emulator, a metadata server and the pipeline');
    const demoStack = await startDemoStack({ prefix: PREFIX }, process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin');
    stack = demoStack.stack;
    const pipeline = stack.pipeline;
    const env = { ...stack.env };
    const repo = env.GCWAL_REPO;
    say(`GCS emulator at ${stack.emulator.url}, bucket ${stack.bucket}; metadata server at ${stack.metadata.host}`);
    say(`the agent runs as ${stack.agentIdentity}, allowed to create and read objects only (no delete)`);
    say('no key file anywhere: gcwal gets its token from the metadata server, as on a GCE VM');
    if (pipeline) {
      say(`pipeline: Pub/Sub emulator at ${pipeline.pubsubHost}; functions ${Object.keys(pipeline.functions).join(', ')} under the functions-framework`);
      say('every object the agent uploads reaches validate and catalogue as a Cloud Storage event');
      // Subscribe to the alerts topic now, so the alert later is timed from the damage, not from connecting.
      pipeline.alerts();
    } else {
      say(bold(`pipeline SKIPPED: ${demoStack.skipped}`));
      say('the archive, backup and restore below run as usual; nothing validates or alerts');
    }

    step('Start a throwaway PostgreSQL cluster, create its repository with gcwal repo-create, archive its WAL with gcwal');
    const source = await startCluster({ archiveCommand: `${agent.command} wal-push %p`, serverEnv: env });
    clusters.push(source);
    // Before the first segment is ready: wal-push never creates a repository (a typo must not start a second archive).
    const created = await runGcwal(agent.command, ['repo-create'], { asUser: 'postgres', env: { ...source.env, ...env } });
    if (created.code !== 0) throw new Error(`repo-create failed (exit ${created.code}): ${created.stderr}`);
    const [{ version }] = await source.query<{ version: string }>("SELECT current_setting('server_version') AS version");
    say(`PostgreSQL ${version} on port ${source.port}, data in ${source.pgdata}`);
    say(`archive_command = '${agent.command} wal-push %p'`);
    say(`GCWAL_REPO=${repo}`);
    say(`gcwal repo-create: ${repo}/gcwal.json now records this cluster's system identifier; the demo does this step for you`);

    step('Write some data (10,000 orders) and let PostgreSQL archive the WAL');
    await source.query('CREATE TABLE orders (id bigserial PRIMARY KEY, customer text NOT NULL, amount numeric(10,2) NOT NULL)');
    await source.query("INSERT INTO orders (customer, amount) SELECT 'customer-' || (g % 97), (g % 1000) / 10.0 FROM generate_series(1, 10000) g");
    await source.waitForArchived(await source.switchWal());
    const [{ archived }] = await source.query<{ archived: string }>('SELECT archived_count AS archived FROM pg_stat_archiver');
    say(`${archived} WAL segment${archived === '1' ? '' : 's'} archived so far`);

    step('Take a base backup with gcwal backup-push');
    const pushed = await runGcwal(agent.command, ['backup-push', source.pgdata], { asUser: 'postgres', env: { ...source.env, ...env } });
    if (pushed.code !== 0) throw new Error(`backup-push failed (exit ${pushed.code}): ${pushed.stderr}`);
    const backedUpAt = Date.now();
    say(pushed.stderr.trim().split('\n').pop() ?? '');
    const listed = await runGcwal(agent.command, ['backup-list'], { env });
    for (const line of listed.stdout.trim().split('\n')) say(line);

    let validatedLine = 'SKIPPED: no Pub/Sub emulator (gcloud not found), nothing validated or alerted';
    if (pipeline) {
      step('The pipeline validates every archived object and keeps the catalogue');
      say('each WAL segment is decompressed, its checksum and page header checked; each backup part against its checksums and the manifest');
      const validated = await waitUntilValidated(stack, PREFIX, VALIDATE_WITHIN_MS);
      validatedLine = `${validated.segments} WAL segments and ${validated.parts} backup parts validated by the pipeline in ${seconds(Date.now() - backedUpAt)}`;
      say(validatedLine);
      say('gcwal status reads the catalogue (never a listing of the bucket); an excerpt:');
      const status = await runGcwal(agent.command, ['status'], { env });
      if (status.code !== 0) throw new Error(`gcwal status failed (exit ${status.code}): ${status.stderr}`);
      for (const line of status.stdout.split('\n').filter((l) => STATUS_EXCERPT.test(l))) say(`  ${line}`);
    }

    step('Keep working after the backup: 5,000 more orders');
    await source.query("INSERT INTO orders (customer, amount) SELECT 'late-' || (g % 13), g / 100.0 FROM generate_series(1, 5000) g");
    const good = await fingerprint(source);
    const [{ target }] = await source.query<{ target: string }>(
      "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' AS target",
    );
    say(`${good.rows} orders, fingerprint ${good.md5}`);
    say(`noting the time: ${target}`);
    await sleep(1100);

    step('Disaster: someone runs DELETE FROM orders');
    await source.query('DELETE FROM orders');
    await source.waitForArchived(await source.switchWal());
    say(`the source now has ${(await fingerprint(source)).rows} orders; the WAL of the delete is archived too`);

    step(`Restore the backup into a new directory, recovering to ${target}`);
    const dest = path.join(work.path, 'restored');
    const fetched = await runGcwal(
      agent.command,
      ['backup-fetch', dest, 'LATEST', '--target-time', target, '--target-action', 'promote', '--gcwal-command', agent.command],
      { asUser: 'postgres', env },
    );
    if (fetched.code !== 0) throw new Error(`backup-fetch failed (exit ${fetched.code}): ${fetched.stderr}`);
    for (const line of fetched.stdout.trim().split('\n')) say(line);

    step('Start PostgreSQL on the restored directory; it replays WAL with gcwal wal-fetch');
    const restored = await startClusterFromDirectory(dest, { serverEnv: env });
    clusters.push(restored);
    await restored.waitForRecoveryEnd(120_000);
    const back = await fingerprint(restored);
    say(`restored cluster on port ${restored.port}: ${back.rows} orders, fingerprint ${back.md5}`);

    const ok = back.rows === good.rows && back.md5 === good.md5;

    let alertLine = '';
    if (pipeline) {
      const victim = await backupStartSegment(stack);
      if (!victim) throw new Error('the catalogue has no backup whose segment could be damaged');
      step(`Bit rot: flip 16 bytes of the archived ${victim} in the bucket, now that the restore is done`);
      say('it is the first segment the backup needs: restoring from that backup would fail from now on');
      say('done as a bucket admin could (the agent cannot overwrite what it archived); the pipeline notices at once, not on the day of a restore');
      const damaged = await flipBytes(stack, `${PREFIX}wal/${victim}`);
      const damagedAt = Date.now();
      const alert = await corruptionAlert(stack, `wal/${victim}`, damaged.generation, ALERT_WITHIN_MS);
      const took = seconds(Date.now() - damagedAt);
      say(`a Pub/Sub subscriber on ${pipeline.topics.alerts} received, ${took} after the damage:`);
      say(bold(`  ${alert.severity} ${alert.kind}: ${alert.summary}`));
      alertLine = `; the damaged ${victim} alerted as ${alert.severity} in ${took}`;
    }

    step('Summary');
    const stored = await bucketUsage(stack, PREFIX);
    say(`repository ${repo}: ${stored.files} objects, ${mib(stored.bytes)} stored (lzop-compressed WAL and backup parts)`);
    say(`data before the delete: ${good.rows} orders ${good.md5}`);
    say(`data after the restore: ${back.rows} orders ${back.md5}`);
    say(`pipeline: ${validatedLine}${alertLine}`);
    say(ok ? bold('MATCH: the restore holds exactly the data committed before the target time') : bold('MISMATCH: the restored data differs'));
    say(`finished in ${((Date.now() - started) / 1000).toFixed(1)} s; cleaning up`);
    return ok ? 0 : 1;
  } finally {
    for (const c of clusters.reverse()) await c.destroy().catch(() => {});
    await stack?.close();
    await work.cleanup();
    await agent.cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
