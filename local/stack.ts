/**
 * The local GCS stack in one call: a token authority with IAM, the GCS
 * emulator enforcing it, a bucket, and a metadata-server stand-in that hands
 * the agent's service account its tokens; with `pipeline`, also the
 * serverless pipeline (local/pipeline.ts: Pub/Sub emulator and the four
 * functions). The agent reaches it with nothing but environment variables and
 * its normal keyless ADC path, so what runs here is what runs on a VM.
 */
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from '../core/errors.ts';
import { TokenAuthority } from './auth/authority.ts';
import type { Role } from './auth/iam.ts';
import type { EventTarget } from './gcs/events.ts';
import { RATE_LIMIT_ENV, rateLimitFromEnv } from './gcs/rate-limit.ts';
import { startGcsEmulator, type GcsEmulator } from './gcs/server.ts';
import { startMetadataServer, type MetadataServer } from './metadata/server.ts';
import { pipelineSettings, startPipeline, type LocalPipeline, type PipelineOptions } from './pipeline.ts';
import { runCleanups } from './process/cleanups.ts';

export interface LocalStackOptions {
  /** state directory, created if missing and kept; default a fresh temp dir removed by close() */
  dir?: string;
  /** default `gcwal-local` */
  bucket?: string;
  /** default `gcwal-local` */
  projectId?: string;
  /** the service account the metadata server hands out; default gcwal-agent@<project>.iam.gserviceaccount.com */
  agentIdentity?: string;
  /** the agent's roles on the bucket; default objectCreator + objectViewer (it never deletes) */
  agentRoles?: readonly Role[];
  /** serve TLS too and point the agent at it (GCWAL_GCS_CA_FILE names its certificate in env) */
  https?: boolean;
  /** bucket retention policy, in seconds */
  retentionPeriodSeconds?: number;
  /** key prefix inside the bucket for GCWAL_REPO */
  prefix?: string;
  /** where the emulator delivers storage events (the pipeline's targets are added to these) */
  events?: EventTarget[];
  /** also run the pipeline (Pub/Sub emulator and the four functions); `{}` for its defaults */
  pipeline?: PipelineOptions;
  /**
   * The emulator's least milliseconds between two mutations of one object
   * (Cloud Storage allows about one a second); `false` turns it off. Default:
   * GCWAL_GCS_OBJECT_RATE_LIMIT_MS when set, else one second.
   */
  objectRateLimitMs?: number | false;
}

/** A running local stack. */
export interface LocalStack {
  readonly emulator: GcsEmulator;
  readonly metadata: MetadataServer;
  readonly authority: TokenAuthority;
  readonly bucket: string;
  readonly projectId: string;
  readonly agentIdentity: string;
  /** holds roles/storage.admin on every bucket; tests inspect the bucket as it */
  readonly adminIdentity: string;
  /** the state directory */
  readonly dir: string;
  /** the pipeline, when `pipeline` was given */
  readonly pipeline: LocalPipeline | undefined;
  /**
   * The variables the agent needs on top of an environment without other
   * Google credentials (no GOOGLE_APPLICATION_CREDENTIALS, no gcloud ADC file):
   * GCWAL_REPO, STORAGE_EMULATOR_HOST, GCWAL_GCS_ENDPOINT, GCE_METADATA_HOST,
   * GOOGLE_CLOUD_PROJECT, GCWAL_GCS_CA_FILE with https, and
   * PUBSUB_EMULATOR_HOST with the pipeline (for gcloud and clients reading
   * its topics; the agent itself does not publish). Deliberately no
   * METADATA_SERVER_DETECTION: the agent detects the stand-in the normal way.
   */
  readonly env: Readonly<Record<string, string>>;
  /** a bearer token for `adminIdentity`, reused while it stays valid */
  adminToken(): string;
  /** stop everything (the pipeline first) and remove the state dir if the stack created it; idempotent */
  close(): Promise<void>;
}

const AGENT_ROLES: readonly Role[] = ['roles/storage.objectCreator', 'roles/storage.objectViewer'];

/**
 * Start the stack. On any failure what was started is stopped again before
 * the error is rethrown. Throws UsageError for an invalid bucket name or a
 * prefix with empty segments.
 */
export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const bucket = options.bucket ?? 'gcwal-local';
  const projectId = options.projectId ?? 'gcwal-local';
  const agentIdentity = options.agentIdentity ?? `gcwal-agent@${projectId}.iam.gserviceaccount.com`;
  const adminIdentity = `gcwal-admin@${projectId}.iam.gserviceaccount.com`;
  const prefix = normalisePrefix(options.prefix);
  // Checked before anything starts, like the bucket name.
  if (options.pipeline) pipelineSettings(options.pipeline);
  if (!/^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new UsageError(
      `invalid bucket name "${bucket}"`,
      'bucket names are 3-63 lowercase letters, digits, dashes, underscores and dots, starting and ending with a letter or digit',
    );
  }

  const ownsDir = options.dir === undefined;
  const dir = ownsDir ? await mkdtemp(path.join(os.tmpdir(), 'gcwal-local-')) : path.resolve(options.dir!);
  const cleanups: (() => Promise<void>)[] = [];
  if (ownsDir) cleanups.push(() => rm(dir, { recursive: true, force: true, maxRetries: 3 }));
  try {
    await mkdir(dir, { recursive: true });
    // Other users (the postgres account running archive_command) may need to read what is here.
    if (ownsDir) await chmod(dir, 0o755);

    const authority = new TokenAuthority();
    for (const role of options.agentRoles ?? AGENT_ROLES) authority.grant(agentIdentity, role, bucket);
    authority.grant(adminIdentity, 'roles/storage.admin');

    const objectRateLimitMs = options.objectRateLimitMs ?? rateLimitFromEnv(process.env[RATE_LIMIT_ENV]);
    const emulator = await startGcsEmulator({ dir, https: options.https ?? false, access: authority, events: options.events ?? [], objectRateLimitMs });
    cleanups.push(() => emulator.close());
    await emulator.createBucket(bucket, options.retentionPeriodSeconds === undefined ? {} : { retentionPeriodSeconds: options.retentionPeriodSeconds });

    const metadata = await startMetadataServer({ authority, identity: agentIdentity, projectId });
    cleanups.push(() => metadata.close());

    const endpoint = options.https ? emulator.httpsUrl : emulator.url;
    if (!endpoint) throw new Error('the gcs emulator did not report an https url although https was asked for');
    const env: Record<string, string> = {
      GCWAL_REPO: `gs://${bucket}${prefix ? `/${prefix}` : ''}`,
      STORAGE_EMULATOR_HOST: endpoint,
      GCWAL_GCS_ENDPOINT: endpoint,
      GCE_METADATA_HOST: metadata.host,
      GOOGLE_CLOUD_PROJECT: projectId,
    };
    // gcwal's own setting, not Node's NODE_EXTRA_CA_CERTS: that one Node 20
    // loads, with its whole root store, as every process starts.
    if (options.https && emulator.caCertPath) env.GCWAL_GCS_CA_FILE = emulator.caCertPath;

    let admin: string | undefined;
    const adminToken = () => {
      if (admin === undefined || authority.identify(admin) !== adminIdentity) admin = authority.issue(adminIdentity).token;
      return admin;
    };
    let pipeline: LocalPipeline | undefined;
    if (options.pipeline) {
      pipeline = await startPipeline(
        { emulator, authority, bucket, projectId, repo: env.GCWAL_REPO, events: options.events ?? [], adminToken },
        options.pipeline,
      );
      cleanups.push(() => pipeline!.close());
      env.PUBSUB_EMULATOR_HOST = pipeline.pubsubHost;
    }

    let closing: Promise<void> | undefined;
    return {
      emulator,
      metadata,
      authority,
      bucket,
      projectId,
      agentIdentity,
      adminIdentity,
      dir,
      pipeline,
      env: Object.freeze(env),
      adminToken,
      close() {
        closing ??= runCleanups(cleanups);
        return closing;
      },
    };
  } catch (err) {
    await runCleanups(cleanups).catch(() => {});
    throw err;
  }
}

function normalisePrefix(prefix: string | undefined): string {
  const trimmed = (prefix ?? '').replace(/^\/+|\/+$/g, '');
  if (trimmed !== '' && trimmed.split('/').includes('')) {
    throw new UsageError(`prefix "${prefix}" has an empty path segment`, 'use a prefix like prod/db1');
  }
  return trimmed;
}
