import test from 'ava';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gcsStorageOptions, parseConfig, parseSize, requireRepo } from '../../agent/config.ts';
import { UsageError } from '../../core/errors.ts';
import { makeTempDir } from '../../local/testkit/tmp.ts';

test('defaults apply when nothing is set', (t) => {
  const c = parseConfig({}, {});
  t.is(c.repo, undefined);
  t.is(c.compression, 'lzo');
  t.is(c.compressionLevel, undefined);
  t.is(c.logFormat, 'text');
  t.is(c.concurrency, 4);
  t.is(c.partSize, 256 * 1024 * 1024);
  t.is(c.retries, 5);
  t.false(c.verbose);
});

test('environment variables are read and a flag wins over its variable', (t) => {
  const env = { GCWAL_REPO: 'file:///a', GCWAL_COMPRESSION: 'zstd', GCWAL_COMPRESSION_LEVEL: '3', PGPORT: '5433', PGHOST: '/tmp' };
  const c = parseConfig({ compression: 'gzip' }, env);
  t.is(c.repo, 'file:///a');
  t.is(c.compression, 'gzip');
  t.is(c.compressionLevel, 3);
  t.deepEqual(c.pg, { host: '/tmp', port: 5433, user: undefined, database: undefined, password: undefined, passfile: undefined });
});

const bad: [string, Record<string, string>, RegExp][] = [
  ['an unknown codec', { GCWAL_COMPRESSION: 'brotli' }, /GCWAL_COMPRESSION must be one of lzo, zstd, gzip, none, not "brotli"/],
  ['a non-numeric level', { GCWAL_COMPRESSION_LEVEL: 'fast' }, /GCWAL_COMPRESSION_LEVEL must be an integer/],
  ['a port out of range', { PGPORT: '70000' }, /PGPORT must be at most 65535/],
  ['a malformed size', { GCWAL_PART_SIZE: 'big' }, /GCWAL_PART_SIZE must be a size like 256MiB/],
  ['a tiny part size', { GCWAL_PART_SIZE: '10' }, /GCWAL_PART_SIZE must be at least/],
  [
    'a part size above 1GiB (a part must fit one validate invocation)',
    { GCWAL_PART_SIZE: '2GiB' },
    /GCWAL_PART_SIZE must be at most 1073741824, not 2147483648/,
  ],
  ['a bad log format', { GCWAL_LOG_FORMAT: 'xml' }, /GCWAL_LOG_FORMAT must be one of text, json/],
];
for (const [what, env, message] of bad) {
  test(`${what} is a usage error naming the variable`, (t) => {
    const err = t.throws(() => parseConfig({}, env), { message });
    t.is((err as { exitCode?: number }).exitCode, 2);
  });
}

test('a password is read from PGPASSWORD only: --pgpassword, which ps would show, is a usage error that does not echo it', (t) => {
  t.is(parseConfig({}, { PGPASSWORD: 's3cret' }).pg.password, 's3cret');
  const err = t.throws(() => parseConfig({ pgpassword: 's3cret' }, { PGPASSWORD: 'other' }), {
    instanceOf: UsageError,
    message: '--pgpassword is not accepted: a command line is visible to every user of the host (ps)',
  });
  t.is(err!.exitCode, 2);
  t.regex(err!.hint, /PGPASSWORD .*~\/\.pgpass/);
  t.notRegex(`${err!.message} ${err!.hint}`, /s3cret/);
});

test('backup-push waits 60 s for its WAL unless GCWAL_ARCHIVE_TIMEOUT or --archive-timeout says otherwise', (t) => {
  t.is(parseConfig({}, {}).archiveTimeout, 60);
  t.is(parseConfig({}, { GCWAL_ARCHIVE_TIMEOUT: '600' }).archiveTimeout, 600);
  t.is(parseConfig({ 'archive-timeout': '5' }, { GCWAL_ARCHIVE_TIMEOUT: '600' }).archiveTimeout, 5);
  t.throws(() => parseConfig({}, { GCWAL_ARCHIVE_TIMEOUT: '0' }), { instanceOf: UsageError, message: /GCWAL_ARCHIVE_TIMEOUT must be at least 1/ });
});

test('the configuration reference (docs/configuration.md) names every variable of the config table, and no flag for a variable that has none', async (t) => {
  const { CONFIG_TABLE } = await import('../../agent/config.ts');
  const page = await readFile(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
  const start = page.indexOf('\n## The agent (`gcwal`)\n');
  t.true(start >= 0, 'docs/configuration.md has no section for the agent');
  const section = page.slice(start, page.indexOf('\n## ', start + 1));
  for (const row of CONFIG_TABLE) {
    t.true(section.includes(`\`${row.env}\``), `${row.env} is missing from docs/configuration.md`);
    if (row.envOnly) t.false(section.includes(`\`--${row.flag}\``), `docs/configuration.md offers --${row.flag}, which is refused`);
  }
});

test('sizes accept binary units', (t) => {
  t.is(parseSize('4096'), 4096);
  t.is(parseSize('1KiB'), 1024);
  t.is(parseSize('256MiB'), 256 * 1024 ** 2);
  t.is(parseSize('2G'), 2 * 1024 ** 3);
  t.is(parseSize('1.5G'), undefined);
});

test('the repository URL is required and validated with an example', (t) => {
  t.throws(() => requireRepo(parseConfig({}, {})), { message: 'GCWAL_REPO is not set' });
  t.throws(() => requireRepo(parseConfig({}, { GCWAL_REPO: 's3://x' })), { message: /is not a file:\/\/ or gs:\/\/ URL/ });
  t.throws(() => requireRepo(parseConfig({}, { GCWAL_REPO: 'file://relative/path' })), { message: /is not an absolute file:\/\/ URL/ });
  t.throws(() => requireRepo(parseConfig({}, { GCWAL_REPO: 'gs://Bad_Bucket' })), { message: /has an invalid bucket name/ });
  t.is(requireRepo(parseConfig({}, { GCWAL_REPO: 'file:///var/lib/gcwal' })), 'file:///var/lib/gcwal');
  t.is(requireRepo(parseConfig({}, { GCWAL_REPO: 'gs://my-bucket/prod' })), 'gs://my-bucket/prod');
});

test("the pipeline's settings are read under the functions' variable names, with their defaults", (t) => {
  const d = parseConfig({}, {});
  t.is(d.catalogueRepo, undefined);
  t.deepEqual(d.retention, { retainFull: undefined, retainDays: undefined, walRetainDays: undefined });
  t.deepEqual(d.thresholds, { stallSeconds: 30 * 60, backupMaxAgeSeconds: 36 * 3600, gapGraceSeconds: 5 * 60 });
  const c = parseConfig(
    { 'retain-full': '3' },
    {
      GCWAL_CATALOGUE_REPO: 'gs://catalogue/prod',
      GCWAL_RETAIN_FULL: '7',
      GCWAL_RETAIN_DAYS: '14',
      GCWAL_WAL_RETAIN_DAYS: '30',
      GCWAL_STALL_MINUTES: '10',
      GCWAL_BACKUP_MAX_AGE_HOURS: '2',
      GCWAL_GAP_GRACE_MINUTES: '0',
    },
  );
  t.is(c.catalogueRepo, 'gs://catalogue/prod');
  t.deepEqual(c.retention, { retainFull: 3, retainDays: 14, walRetainDays: 30 });
  t.deepEqual(c.thresholds, { stallSeconds: 600, backupMaxAgeSeconds: 7200, gapGraceSeconds: 0 });
});

test('the settings the agent shares with the functions have the same flag, type, bounds and default in both tables', async (t) => {
  const { FUNCTIONS_CONFIG_TABLE } = await import('../../functions/config.ts');
  const { CONFIG_TABLE } = await import('../../agent/config.ts');
  const shared = [
    'GCWAL_CATALOGUE_REPO',
    'GCWAL_RETAIN_FULL',
    'GCWAL_RETAIN_DAYS',
    'GCWAL_WAL_RETAIN_DAYS',
    'GCWAL_STALL_MINUTES',
    'GCWAL_BACKUP_MAX_AGE_HOURS',
    'GCWAL_GAP_GRACE_MINUTES',
  ];
  for (const env of shared) {
    const pick = (row: { flag: string; kind: string; min?: number; max?: number; default?: string } | undefined) =>
      row && { flag: row.flag, kind: row.kind, min: row.min, max: row.max, default: row.default };
    const agentRow = pick(CONFIG_TABLE.find((r) => r.env === env));
    t.truthy(agentRow, env);
    t.deepEqual(agentRow, pick(FUNCTIONS_CONFIG_TABLE.find((r) => r.env === env)), env);
  }
});

/** Where a gcloud ADC file may be, for the rows below. */
const HOME_ADC = '/home/pg/.config/gcloud/application_default_credentials.json';
const SDK_ADC = '/etc/gcloud/application_default_credentials.json';
const HOME = { HOME: '/home/pg' };

// [what, environment, flags, ADC files that exist, the metadata server the driver asks itself]
const tokenSources: [string, Record<string, string>, Record<string, string>, string[], string | undefined][] = [
  ['nothing set: the default metadata address', {}, {}, [], '169.254.169.254'],
  ['GCE_METADATA_HOST', { ...HOME, GCE_METADATA_HOST: '127.0.0.1:8080' }, {}, [], '127.0.0.1:8080'],
  [
    'GCE_METADATA_IP, which gcp-metadata prefers to GCE_METADATA_HOST',
    { GCE_METADATA_IP: '10.0.0.2', GCE_METADATA_HOST: 'metadata.internal' },
    {},
    [],
    '10.0.0.2',
  ],
  ['METADATA_SERVER_DETECTION other than none', { METADATA_SERVER_DETECTION: 'assume-present' }, {}, [], '169.254.169.254'],
  ['an ADC file elsewhere than where gcloud keeps it', { ...HOME, CLOUDSDK_CONFIG: '/etc/gcloud' }, {}, ['/home/pg/other.json'], '169.254.169.254'],
  ['GCWAL_IMPERSONATE_SERVICE_ACCOUNT', { GCWAL_IMPERSONATE_SERVICE_ACCOUNT: 'sa@p.iam.gserviceaccount.com' }, {}, [], undefined],
  ['--impersonate-service-account', {}, { 'impersonate-service-account': 'sa@p.iam.gserviceaccount.com' }, [], undefined],
  ['GOOGLE_APPLICATION_CREDENTIALS', { GOOGLE_APPLICATION_CREDENTIALS: '/etc/gcwal/wif.json' }, {}, [], undefined],
  ['google_application_credentials in lower case', { google_application_credentials: '/etc/gcwal/key.json' }, {}, [], undefined],
  ['METADATA_SERVER_DETECTION=none', { METADATA_SERVER_DETECTION: 'none' }, {}, [], undefined],
  ['METADATA_SERVER_DETECTION=None with spaces', { METADATA_SERVER_DETECTION: ' None ' }, {}, [], undefined],
  ['a gcloud ADC file under HOME', HOME, {}, [HOME_ADC], undefined],
  ['a gcloud ADC file under CLOUDSDK_CONFIG', { ...HOME, CLOUDSDK_CONFIG: '/etc/gcloud' }, {}, [SDK_ADC], undefined],
];
for (const [what, env, flags, files, host] of tokenSources) {
  test(`the driver ${host ? 'asks the metadata server itself' : 'leaves tokens to google-auth-library'} with ${what}`, (t) => {
    const asked: string[] = [];
    const c = parseConfig(flags, env, (file) => (asked.push(file), files.includes(file)));
    t.deepEqual(c.gcs.metadataServer, host === undefined ? undefined : { host });
    t.deepEqual(gcsStorageOptions(c).metadataServer, c.gcs.metadataServer);
    if (host !== undefined && env.HOME) t.true(asked.includes(HOME_ADC), 'the ADC file under HOME was looked for');
  });
}

test('a real gcloud ADC file on disk turns the direct metadata source off', async (t) => {
  const home = await makeTempDir('config-home');
  t.teardown(() => home.cleanup());
  t.deepEqual(parseConfig({}, { HOME: home.path }).gcs.metadataServer, { host: '169.254.169.254' });
  await mkdir(path.join(home.path, '.config', 'gcloud'), { recursive: true });
  await writeFile(path.join(home.path, '.config', 'gcloud', 'application_default_credentials.json'), '{}');
  t.is(parseConfig({}, { HOME: home.path }).gcs.metadataServer, undefined);
});
