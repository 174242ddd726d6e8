import { existsSync } from 'node:fs';
import path from 'node:path';
import { CODEC_NAMES, type CodecName } from '../core/codec/types.ts';
import { readConfigTable, type ConfigEntry } from '../core/config/table.ts';
import { UsageError } from '../core/errors.ts';
import type { GcsStorageOptions } from '../core/storage/gcs/storage.ts';
import { parsePrimaryConninfo, type PrimaryConninfo } from './pg/conninfo.ts';

export { parseSize, type ConfigEntry } from '../core/config/table.ts';
import type { LogFormat } from './log.ts';

/** The agent's whole configuration, parsed once at the CLI edge. */
export interface Config {
  /** repository URL; undefined only for commands that do not need it */
  repo: string | undefined;
  compression: CodecName;
  /** codec-specific level; undefined means the codec's default */
  compressionLevel: number | undefined;
  logFormat: LogFormat;
  verbose: boolean;
  /** parallel part uploads/downloads in backup-push/backup-fetch */
  concurrency: number;
  /** raw bytes per backup tar part before a new part is started */
  partSize: number;
  /** how many times a transient storage failure is retried */
  retries: number;
  /** cap on one backoff wait, seconds */
  retryMaxDelay: number;
  gcs: {
    endpoint: string | undefined;
    /** PEM file of the CA certificates trusted for the storage endpoint instead of the default roots */
    caFile: string | undefined;
    impersonate: string | undefined;
    projectId: string | undefined;
    chunkSize: number;
    /**
     * The metadata server the driver takes its own tokens from directly, set
     * only where Application Default Credentials would end up there anyway
     * (see `directMetadataServer`); undefined means google-auth-library.
     */
    metadataServer: { host: string } | undefined;
  };
  pg: {
    host: string | undefined;
    port: number | undefined;
    user: string | undefined;
    database: string | undefined;
    password: string | undefined;
    /** libpq's password file, read when the server asks for a password and PGPASSWORD is unset; undefined means ~/.pgpass */
    passfile?: string | undefined;
  };
  /** wal-push: archive through one background archiver per pg_wal (agent/wal/archiver.ts) */
  archiveAsync: boolean;
  /** backup-push: seconds to wait for the next WAL segment its backup needs to reach the repository */
  archiveTimeout: number;
  /** backup-push on a standby: how to reach the primary, to switch its WAL segment once the backup stops */
  primary: PrimaryConninfo | undefined;
  /** wal-fetch's background prefetch during recovery (agent/wal/prefetcher.ts); depth 0 turns it off */
  prefetch: {
    depth: number;
    concurrency: number;
    spoolBytes: number;
  };
  /** where the pipeline keeps its catalogue, when not in the repository (status, delete) */
  catalogueRepo: string | undefined;
  /** the retention policy `gcwal delete` plans with; each undefined when not set */
  retention: {
    retainFull: number | undefined;
    retainDays: number | undefined;
    walRetainDays: number | undefined;
  };
  /** when `gcwal status` turns a listing's facts into alerts (the functions' thresholds), in seconds */
  thresholds: {
    stallSeconds: number;
    backupMaxAgeSeconds: number;
    gapGraceSeconds: number;
  };
}

export const CONFIG_TABLE: readonly ConfigEntry[] = [
  { env: 'GCWAL_REPO', flag: 'repo', kind: 'string', description: 'repository URL: file:///absolute/path or gs://bucket/optional/prefix' },
  {
    env: 'GCWAL_COMPRESSION',
    flag: 'compression',
    kind: 'enum',
    values: CODEC_NAMES,
    default: 'lzo',
    description: 'codec for new objects (reads use whatever an object was written with)',
  },
  {
    env: 'GCWAL_COMPRESSION_LEVEL',
    flag: 'compression-level',
    kind: 'int',
    min: -7,
    max: 22,
    description: 'codec level (zstd 1-22, gzip 1-9; lzo has one level)',
  },
  {
    env: 'GCWAL_LOG_FORMAT',
    flag: 'log-format',
    kind: 'enum',
    values: ['text', 'json'],
    default: 'text',
    description: 'stderr log format; json lines carry a severity field for Cloud Logging',
  },
  { env: 'GCWAL_VERBOSE', flag: 'verbose', kind: 'bool', default: 'false', description: 'log debug detail' },
  {
    env: 'GCWAL_CONCURRENCY',
    flag: 'concurrency',
    kind: 'int',
    default: '4',
    min: 1,
    max: 64,
    description: 'backup parts transferred in parallel (backup-push builds, backup-fetch reads, decodes and writes that many at once)',
  },
  // Capped: the pipeline's validate function reads a whole part in one invocation (docs/catalogue.md, backup verdicts).
  {
    env: 'GCWAL_PART_SIZE',
    flag: 'part-size',
    kind: 'size',
    default: '256MiB',
    min: 1024 * 1024,
    max: 1024 ** 3,
    description: 'raw bytes per backup tar part (accepts KiB, MiB, GiB; at most 1GiB, so the validate function reads any part within its limits)',
  },
  {
    env: 'GCWAL_RETRIES',
    flag: 'retries',
    kind: 'int',
    default: '5',
    min: 0,
    max: 100,
    description: 'retries of a transient storage failure before giving up',
  },
  {
    env: 'GCWAL_RETRY_MAX_DELAY',
    flag: 'retry-max-delay',
    kind: 'int',
    default: '32',
    min: 1,
    max: 600,
    description: 'longest wait in seconds between retries of a storage request (backoff doubles from 1 s up to this)',
  },
  {
    env: 'GCWAL_GCS_ENDPOINT',
    flag: 'gcs-endpoint',
    kind: 'string',
    description: 'Cloud Storage API root for an emulator or private endpoint, e.g. http://127.0.0.1:9023 (default: Google)',
  },
  {
    env: 'STORAGE_EMULATOR_HOST',
    flag: 'storage-emulator-host',
    kind: 'string',
    description: 'the standard emulator variable; used when GCWAL_GCS_ENDPOINT is not set',
  },
  {
    env: 'GCWAL_CA_STORE',
    flag: 'ca-store',
    kind: 'enum',
    values: ['system', 'node'],
    default: 'system',
    description: "certificates Node trusts, applied by the gcwal launcher: the system's OpenSSL store (when it has a hashed directory) or Node's bundled roots",
  },
  {
    env: 'GCWAL_GCS_CA_FILE',
    flag: 'gcs-ca-file',
    kind: 'string',
    description:
      'PEM file of the CA certificates to trust for the storage endpoint instead of the default roots (an emulator or private endpoint with its own CA); other TLS connections are unaffected',
  },
  {
    env: 'GCWAL_IMPERSONATE_SERVICE_ACCOUNT',
    flag: 'impersonate-service-account',
    kind: 'string',
    description: 'act as this service account, with a token minted by the ambient credentials (needs roles/iam.serviceAccountTokenCreator on it)',
  },
  {
    env: 'GOOGLE_CLOUD_PROJECT',
    flag: 'project',
    kind: 'string',
    description: 'project id for Cloud Storage calls (optional; the agent needs none for object access)',
  },
  {
    env: 'GCWAL_UPLOAD_CHUNK_SIZE',
    flag: 'upload-chunk-size',
    kind: 'size',
    default: '8MiB',
    min: 256 * 1024,
    description: 'resumable upload chunk (a multiple of 256KiB); bounds memory per upload',
  },
  { env: 'PGHOST', flag: 'pghost', kind: 'string', description: 'PostgreSQL host or socket directory (libpq)' },
  { env: 'PGPORT', flag: 'pgport', kind: 'int', min: 1, max: 65535, description: 'PostgreSQL port (libpq)' },
  { env: 'PGUSER', flag: 'pguser', kind: 'string', description: 'PostgreSQL user (libpq)' },
  { env: 'PGDATABASE', flag: 'pgdatabase', kind: 'string', description: 'PostgreSQL database (libpq)' },
  {
    env: 'PGPASSWORD',
    flag: 'pgpassword',
    kind: 'string',
    description: 'PostgreSQL password (libpq); the variable only, no flag; prefer ~/.pgpass (or the file PGPASSFILE names)',
    envOnly: { hint: 'set PGPASSWORD in the environment or, better, put the password in ~/.pgpass (or the file PGPASSFILE names), as for psql' },
  },
  { env: 'PGPASSFILE', flag: 'pgpassfile', kind: 'string', description: 'PostgreSQL password file (libpq; default ~/.pgpass, mode 0600)' },
  {
    env: 'GCWAL_PRIMARY_CONNINFO',
    flag: 'primary-conninfo',
    kind: 'string',
    description:
      "backup-push on a standby: libpq connection string of the primary (e.g. 'host=db1 user=postgres dbname=postgres'), where it runs pg_switch_wal() once the backup stops so the last WAL the backup needs is archived at once; the password from ~/.pgpass (or passfile=, PGPASSFILE), password= only in the variable",
  },
  {
    env: 'GCWAL_ARCHIVE_TIMEOUT',
    flag: 'archive-timeout',
    kind: 'int',
    default: '60',
    min: 1,
    max: 86_400,
    description:
      'backup-push: seconds to wait for the next WAL segment the backup needs to reach the repository before failing (the wait restarts whenever one arrives)',
  },
  {
    env: 'GCWAL_ARCHIVE_ASYNC',
    flag: 'archive-async',
    kind: 'bool',
    default: 'false',
    description:
      'wal-push: asynchronous archiving; the first call starts one background archiver per pg_wal that archives every ready segment ahead, and each call returns once its segment is durable (waiting for the archiver, or pushing it itself)',
  },
  {
    env: 'GCWAL_PREFETCH',
    flag: 'prefetch',
    kind: 'int',
    default: '16',
    min: 0,
    max: 1024,
    description:
      'wal-fetch during recovery: WAL segments after the one asked for that a background process fetches ahead into pg_wal/.gcwal-spool; 0 turns prefetch off',
  },
  {
    env: 'GCWAL_PREFETCH_CONCURRENCY',
    flag: 'prefetch-concurrency',
    kind: 'int',
    default: '4',
    min: 1,
    max: 64,
    description: 'segments the prefetcher fetches in parallel',
  },
  {
    env: 'GCWAL_PREFETCH_SPOOL_SIZE',
    flag: 'prefetch-spool-size',
    kind: 'size',
    default: '512MiB',
    min: 1024 * 1024,
    description: 'most bytes the prefetch spool holds on disk, fetches in flight included (accepts KiB, MiB, GiB)',
  },
  // The pipeline's settings, under the names functions/config.ts gives them, so one environment serves both.
  {
    env: 'GCWAL_CATALOGUE_REPO',
    flag: 'catalogue-repo',
    kind: 'string',
    description: 'where the pipeline keeps its catalogue, if not in the repository (status and delete read it)',
  },
  { env: 'GCWAL_RETAIN_FULL', flag: 'retain-full', kind: 'int', min: 1, max: 10_000, description: 'delete keeps the newest N full backups' },
  {
    env: 'GCWAL_RETAIN_DAYS',
    flag: 'retain-days',
    kind: 'int',
    min: 1,
    max: 36_500,
    description: 'delete keeps every backup needed to restore to any point in the last D days',
  },
  {
    env: 'GCWAL_WAL_RETAIN_DAYS',
    flag: 'wal-retain-days',
    kind: 'int',
    min: 1,
    max: 36_500,
    description: 'delete keeps WAL for at least this many days (at least the backup window)',
  },
  {
    env: 'GCWAL_STALL_MINUTES',
    flag: 'stall-minutes',
    kind: 'int',
    default: '30',
    min: 1,
    max: 100_000,
    description: 'status without a catalogue: alert when no WAL has arrived for this long',
  },
  {
    env: 'GCWAL_BACKUP_MAX_AGE_HOURS',
    flag: 'backup-max-age-hours',
    kind: 'int',
    default: '36',
    min: 1,
    max: 100_000,
    description: 'status without a catalogue: alert when the newest full backup is older than this',
  },
  {
    env: 'GCWAL_GAP_GRACE_MINUTES',
    flag: 'gap-grace-minutes',
    kind: 'int',
    default: '5',
    min: 0,
    max: 100_000,
    description: 'status without a catalogue: a missing segment is a gap once a later one has been archived this long',
  },
];

/**
 * Build the config from `--flags` (already split out of argv) and the environment.
 * A flag wins over its variable. Throws UsageError naming the variable on any
 * malformed value. Does not check that GCWAL_REPO is set: commands that need
 * a repository call `requireRepo`.
 */
export function parseConfig(
  flags: Readonly<Record<string, string | boolean | undefined>>,
  env: Readonly<Record<string, string | undefined>>,
  fileExists: (file: string) => boolean = existsSync,
): Config {
  const v = readConfigTable(CONFIG_TABLE, flags, env);
  const impersonate = v.GCWAL_IMPERSONATE_SERVICE_ACCOUNT as string | undefined;
  return {
    repo: v.GCWAL_REPO as string | undefined,
    compression: v.GCWAL_COMPRESSION as CodecName,
    compressionLevel: v.GCWAL_COMPRESSION_LEVEL as number | undefined,
    logFormat: v.GCWAL_LOG_FORMAT as LogFormat,
    verbose: v.GCWAL_VERBOSE as boolean,
    concurrency: v.GCWAL_CONCURRENCY as number,
    partSize: v.GCWAL_PART_SIZE as number,
    retries: v.GCWAL_RETRIES as number,
    retryMaxDelay: v.GCWAL_RETRY_MAX_DELAY as number,
    gcs: {
      endpoint: ((v.GCWAL_GCS_ENDPOINT ?? v.STORAGE_EMULATOR_HOST) as string | undefined)?.replace(/\/+$/, ''),
      caFile: v.GCWAL_GCS_CA_FILE as string | undefined,
      impersonate,
      projectId: v.GOOGLE_CLOUD_PROJECT as string | undefined,
      chunkSize: v.GCWAL_UPLOAD_CHUNK_SIZE as number,
      metadataServer: directMetadataServer(env, impersonate, fileExists),
    },
    pg: {
      host: v.PGHOST as string | undefined,
      port: v.PGPORT as number | undefined,
      user: v.PGUSER as string | undefined,
      database: v.PGDATABASE as string | undefined,
      password: v.PGPASSWORD as string | undefined,
      passfile: v.PGPASSFILE as string | undefined,
    },
    archiveAsync: v.GCWAL_ARCHIVE_ASYNC as boolean,
    archiveTimeout: v.GCWAL_ARCHIVE_TIMEOUT as number,
    primary: primaryFrom(v.GCWAL_PRIMARY_CONNINFO as string | undefined, flags['primary-conninfo'] !== undefined),
    prefetch: {
      depth: v.GCWAL_PREFETCH as number,
      concurrency: v.GCWAL_PREFETCH_CONCURRENCY as number,
      spoolBytes: v.GCWAL_PREFETCH_SPOOL_SIZE as number,
    },
    catalogueRepo: v.GCWAL_CATALOGUE_REPO as string | undefined,
    retention: {
      retainFull: v.GCWAL_RETAIN_FULL as number | undefined,
      retainDays: v.GCWAL_RETAIN_DAYS as number | undefined,
      walRetainDays: v.GCWAL_WAL_RETAIN_DAYS as number | undefined,
    },
    thresholds: {
      stallSeconds: (v.GCWAL_STALL_MINUTES as number) * 60,
      backupMaxAgeSeconds: (v.GCWAL_BACKUP_MAX_AGE_HOURS as number) * 3600,
      gapGraceSeconds: (v.GCWAL_GAP_GRACE_MINUTES as number) * 60,
    },
  };
}

/** GCWAL_PRIMARY_CONNINFO parsed; a password given as --primary-conninfo is refused (ps shows it). */
function primaryFrom(text: string | undefined, fromFlag: boolean): PrimaryConninfo | undefined {
  if (text === undefined) return undefined;
  return parsePrimaryConninfo(text, { variable: fromFlag ? '--primary-conninfo' : 'GCWAL_PRIMARY_CONNINFO', fromFlag });
}

const REPO_EXAMPLE = 'e.g. GCWAL_REPO=file:///var/lib/gcwal or GCWAL_REPO=gs://my-bucket/prod-db';

/** The repository URL, validated; throws UsageError with an example when missing or malformed. */
export function requireRepo(config: Config): string {
  if (!config.repo) throw new UsageError('GCWAL_REPO is not set', `set it to the repository URL, ${REPO_EXAMPLE}`);
  return checkRepoUrl(config.repo, 'GCWAL_REPO', REPO_EXAMPLE);
}

/**
 * Check a repository URL given in `variable`: an absolute file:// URL or a
 * gs:// URL with a valid bucket name. Returns it unchanged; throws
 * UsageError naming the variable, with `example` in the hint.
 */
export function checkRepoUrl(url: string, variable: string, example: string): string {
  if (url.startsWith('file://')) {
    if (!url.slice('file://'.length).startsWith('/'))
      throw new UsageError(`${variable} "${url}" is not an absolute file:// URL`, `use three slashes and an absolute path, ${example}`);
    return url;
  }
  if (url.startsWith('gs://')) {
    const bucket = url.slice(5).split('/')[0];
    if (!/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/.test(bucket))
      throw new UsageError(`${variable} "${url}" has an invalid bucket name`, `bucket names are 3-63 lowercase letters, digits, dashes, dots, ${example}`);
    return url;
  }
  throw new UsageError(`${variable} "${url}" is not a file:// or gs:// URL`, example);
}

/**
 * The metadata server whose tokens the gs:// driver may fetch itself,
 * skipping google-auth-library, whose loading is a large part of a wal-push's
 * start-up (docs/performance.md): only
 * when that library's Application Default Credentials would end up there
 * too, i.e. when all hold: no impersonation, no GOOGLE_APPLICATION_CREDENTIALS,
 * METADATA_SERVER_DETECTION is not `none`, and no gcloud ADC file
 * (`$CLOUDSDK_CONFIG/application_default_credentials.json` or
 * `$HOME/.config/gcloud/application_default_credentials.json`) exists. The
 * host is the one gcp-metadata uses: GCE_METADATA_IP, else
 * GCE_METADATA_HOST, else 169.254.169.254. Undefined otherwise.
 */
export function directMetadataServer(
  env: Readonly<Record<string, string | undefined>>,
  impersonate: string | undefined,
  fileExists: (file: string) => boolean,
): { host: string } | undefined {
  if (impersonate) return undefined;
  // google-auth-library reads the variable in either case.
  if (env.GOOGLE_APPLICATION_CREDENTIALS || env.google_application_credentials) return undefined;
  if (env.METADATA_SERVER_DETECTION?.trim().toLowerCase() === 'none') return undefined;
  const adcFiles = [
    env.CLOUDSDK_CONFIG && path.join(env.CLOUDSDK_CONFIG, 'application_default_credentials.json'),
    env.HOME && path.join(env.HOME, '.config', 'gcloud', 'application_default_credentials.json'),
  ];
  if (adcFiles.some((file) => file && fileExists(file))) return undefined;
  return { host: env.GCE_METADATA_IP || env.GCE_METADATA_HOST || '169.254.169.254' };
}

/** The Cloud Storage driver's options from the config, for the repository and the catalogue alike. */
export function gcsStorageOptions(cfg: Config): GcsStorageOptions {
  return {
    endpoint: cfg.gcs.endpoint,
    caFile: cfg.gcs.caFile,
    impersonate: cfg.gcs.impersonate,
    metadataServer: cfg.gcs.metadataServer,
    projectId: cfg.gcs.projectId,
    chunkSize: cfg.gcs.chunkSize,
    retries: cfg.retries,
    maxRetryDelaySeconds: cfg.retryMaxDelay,
    concurrency: Math.max(cfg.concurrency * 2, 4),
  };
}
