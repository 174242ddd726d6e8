import { readConfigTable, type ConfigEntry } from '../core/config/table.ts';
import { UsageError } from '../core/errors.ts';

/** The functions' whole configuration, read once per process from the environment Terraform sets. */
export interface FunctionsConfig {
  /** the repository the functions watch: gs://bucket/prefix (file:// in tests) */
  repo: string;
  /** where the catalogue lives; the repository itself unless set */
  catalogueRepo: string;
  projectId: string | undefined;
  eventsTopic: string;
  alertsTopic: string;
  retention: { retainFull: number | undefined; retainDays: number | undefined; walRetainDays: number | undefined };
  /** prune plans and publishes but deletes nothing */
  pruneDryRun: boolean;
  thresholds: { stallSeconds: number; backupMaxAgeSeconds: number; unvalidatedSeconds: number; gapGraceSeconds: number };
  /** Cloud Storage API root for an emulator; undefined = Google */
  gcsEndpoint: string | undefined;
  /** host:port of a Pub/Sub emulator; undefined = Google */
  pubsubEmulatorHost: string | undefined;
}

/** One row per setting; Terraform's `environment_variables` use exactly these names (a test checks). */
export const FUNCTIONS_CONFIG_TABLE: readonly ConfigEntry[] = [
  { env: 'GCWAL_REPO', flag: 'repo', kind: 'string', description: 'the repository the functions watch: gs://bucket/optional/prefix' },
  {
    env: 'GCWAL_CATALOGUE_REPO',
    flag: 'catalogue-repo',
    kind: 'string',
    description:
      'where the catalogue is kept, if not in the repository (needed when the bucket has a locked retention policy: the catalogue is replaced on every change)',
  },
  { env: 'GOOGLE_CLOUD_PROJECT', flag: 'project', kind: 'string', description: 'project of the Pub/Sub topics (set by Cloud Functions)' },
  { env: 'GCWAL_EVENTS_TOPIC', flag: 'events-topic', kind: 'string', default: 'gcwal-events', description: 'topic for validation outcomes and prune reports' },
  { env: 'GCWAL_ALERTS_TOPIC', flag: 'alerts-topic', kind: 'string', default: 'gcwal-alerts', description: 'topic for alerts and their resolutions' },
  { env: 'GCWAL_RETAIN_FULL', flag: 'retain-full', kind: 'int', min: 1, max: 10_000, description: 'prune keeps the newest N full backups' },
  {
    env: 'GCWAL_RETAIN_DAYS',
    flag: 'retain-days',
    kind: 'int',
    min: 1,
    max: 36_500,
    description: 'prune keeps every backup needed to restore to any point in the last D days',
  },
  {
    env: 'GCWAL_WAL_RETAIN_DAYS',
    flag: 'wal-retain-days',
    kind: 'int',
    min: 1,
    max: 36_500,
    description: 'WAL kept for at least this many days (at least the backup window)',
  },
  { env: 'GCWAL_PRUNE_DRY_RUN', flag: 'prune-dry-run', kind: 'bool', default: 'false', description: 'prune publishes its plan but deletes nothing' },
  {
    env: 'GCWAL_STALL_MINUTES',
    flag: 'stall-minutes',
    kind: 'int',
    default: '30',
    min: 1,
    max: 100_000,
    description: 'alert when no WAL has arrived for this long',
  },
  {
    env: 'GCWAL_BACKUP_MAX_AGE_HOURS',
    flag: 'backup-max-age-hours',
    kind: 'int',
    default: '36',
    min: 1,
    max: 100_000,
    description: 'alert when the newest valid full backup is older than this',
  },
  {
    env: 'GCWAL_UNVALIDATED_MINUTES',
    flag: 'unvalidated-minutes',
    kind: 'int',
    default: '15',
    min: 1,
    max: 100_000,
    description: 'alert when an object has waited this long for validation',
  },
  {
    env: 'GCWAL_GAP_GRACE_MINUTES',
    flag: 'gap-grace-minutes',
    kind: 'int',
    default: '5',
    min: 0,
    max: 100_000,
    description: 'a missing segment is a gap once a later one has been archived this long',
  },
  { env: 'GCWAL_GCS_ENDPOINT', flag: 'gcs-endpoint', kind: 'string', description: 'Cloud Storage API root for an emulator (default: Google)' },
  {
    env: 'STORAGE_EMULATOR_HOST',
    flag: 'storage-emulator-host',
    kind: 'string',
    description: 'the standard emulator variable; used when GCWAL_GCS_ENDPOINT is not set',
  },
  { env: 'PUBSUB_EMULATOR_HOST', flag: 'pubsub-emulator-host', kind: 'string', description: 'host:port of a Pub/Sub emulator (default: Google)' },
];

/**
 * Read the functions' configuration from an environment. Throws UsageError
 * naming the variable when one is malformed, when GCWAL_REPO is missing,
 * when GCWAL_WAL_RETAIN_DAYS is shorter than GCWAL_RETAIN_DAYS, or
 * when neither retention setting is present (prune would have no policy; the
 * other functions still need the check so a mis-deployed stack fails on its
 * first event, loudly, not on the first prune).
 */
export function readFunctionsConfig(env: Readonly<Record<string, string | undefined>>): FunctionsConfig {
  const v = readConfigTable(FUNCTIONS_CONFIG_TABLE, {}, env);
  const repo = v.GCWAL_REPO as string | undefined;
  if (!repo) throw new UsageError('GCWAL_REPO is not set for the functions', "set it in the functions' environment, e.g. GCWAL_REPO=gs://my-bucket/prod-db");
  if (!/^(gs|file):\/\//.test(repo)) throw new UsageError(`GCWAL_REPO "${repo}" is not a gs:// or file:// URL`, 'e.g. GCWAL_REPO=gs://my-bucket/prod-db');
  const catalogueRepo = v.GCWAL_CATALOGUE_REPO as string | undefined;
  if (catalogueRepo !== undefined && !/^(gs|file):\/\//.test(catalogueRepo)) {
    throw new UsageError(
      `GCWAL_CATALOGUE_REPO "${catalogueRepo}" is not a gs:// or file:// URL`,
      'e.g. GCWAL_CATALOGUE_REPO=gs://my-catalogue-bucket/prod-db, or leave it unset to keep the catalogue in the repository',
    );
  }
  const retainFull = v.GCWAL_RETAIN_FULL as number | undefined;
  const retainDays = v.GCWAL_RETAIN_DAYS as number | undefined;
  const walRetainDays = v.GCWAL_WAL_RETAIN_DAYS as number | undefined;
  if (retainFull === undefined && retainDays === undefined) {
    throw new UsageError(
      'no retention policy: neither GCWAL_RETAIN_FULL nor GCWAL_RETAIN_DAYS is set',
      'set at least one, e.g. GCWAL_RETAIN_FULL=7 or GCWAL_RETAIN_DAYS=14',
    );
  }
  // planRetention refuses this too, but only at the first prune and naming no variable.
  if (walRetainDays !== undefined && retainDays !== undefined && walRetainDays < retainDays) {
    throw new UsageError(
      `GCWAL_WAL_RETAIN_DAYS ${walRetainDays} is shorter than GCWAL_RETAIN_DAYS ${retainDays}`,
      'the WAL window can only extend the backup window: set GCWAL_WAL_RETAIN_DAYS to at least GCWAL_RETAIN_DAYS, or leave it unset',
    );
  }
  const minutes = (name: string) => (v[name] as number) * 60;
  return {
    repo,
    catalogueRepo: catalogueRepo ?? repo,
    projectId: v.GOOGLE_CLOUD_PROJECT as string | undefined,
    eventsTopic: v.GCWAL_EVENTS_TOPIC as string,
    alertsTopic: v.GCWAL_ALERTS_TOPIC as string,
    retention: { retainFull, retainDays, walRetainDays },
    pruneDryRun: v.GCWAL_PRUNE_DRY_RUN as boolean,
    thresholds: {
      stallSeconds: minutes('GCWAL_STALL_MINUTES'),
      backupMaxAgeSeconds: (v.GCWAL_BACKUP_MAX_AGE_HOURS as number) * 3600,
      unvalidatedSeconds: minutes('GCWAL_UNVALIDATED_MINUTES'),
      gapGraceSeconds: minutes('GCWAL_GAP_GRACE_MINUTES'),
    },
    gcsEndpoint: ((v.GCWAL_GCS_ENDPOINT ?? v.STORAGE_EMULATOR_HOST) as string | undefined)?.replace(/\/+$/, ''),
    pubsubEmulatorHost: v.PUBSUB_EMULATOR_HOST as string | undefined,
  };
}
