#!/usr/bin/env node
/**
 * Bundle the CLI into ES modules: the entry dist/gcwal.mjs and chunks beside
 * it (dist/*.mjs), plus dist/gcwal, the sh launcher that runs it (the
 * package's bin; from agent/wal/launcher.sh, see agent/wal/launcher.mjs), so
 * that `gcwal wal-push` (run by PostgreSQL's archiver once per WAL segment)
 * loads a few files instead of resolving and compiling
 * a few hundred TypeScript and node_modules files. Code splitting puts each
 * command's modules, loaded by the dynamic imports in
 * agent/commands/index.ts, in chunks of their own, so wal-push does not
 * compile backup-push, restore or the PostgreSQL client at start-up. Every
 * dist/*.mjs file belongs to the build and must be installed together, with
 * dist/gcwal beside them. wal-push and wal-fetch also get dist/gcwal-wal.cjs,
 * one CommonJS file from agent/wal/cli.ts that the launcher runs for them (it
 * loads faster than the entry and its chunks). The launcher answers an
 * archive_command call for a segment already archived ahead without starting
 * Node at all.
 *
 * Native and wasm packages cannot be bundled: they stay external and are
 * resolved at run time from the node_modules next to (or above) the bundle.
 * Their names are also written to dist/gcwal.externals.json, which the test
 * harness (local/testkit/install.ts) reads to know what to copy next to an
 * installed bundle; that keeps this list the only place they are named.
 *
 * The two entries are agent/cli.ts (every command: gcwal.mjs) and
 * agent/wal/cli.ts (gcwal-wal.cjs).
 *
 * Usage: node scripts/build.mjs [--outdir <dir>]
 *   --outdir  defaults to dist
 */
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as esbuild from 'esbuild';
import { writeLauncher } from '../agent/wal/launcher.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Packages loaded at run time from node_modules rather than bundled: native
 * addons (their .node files are found relative to their own package directory
 * by `bindings`/require), wasm loaders (read their .wasm beside them), and
 * the Cloud Storage client (large, loaded only for gs:// repositories, and its
 * google-auth-library must be the copy it depends on).
 */
const EXTERNAL_PACKAGES = ['lzo', 'zstd-napi', 'fast-crc32c', 'sse4_crc32', 'lzo-wasm', '@google-cloud/storage'];

/**
 * Optional peers that some bundled packages require() inside try/catch and
 * that are not installed; external so esbuild does not fail resolving them,
 * and not copied anywhere (their absence is the expected case).
 */
const OPTIONAL_ABSENT = ['pg-native'];

/**
 * An ES module has no `require`; CommonJS code bundled into it calls require()
 * for Node built-ins and for the external packages, so define one at the top,
 * resolving from the bundle's own location. Only `require`: esbuild renames
 * any bundled declaration of it, but not of `__dirname`/`__filename`, which
 * ESM sources commonly declare themselves (a banner copy would then be a
 * duplicate declaration, a SyntaxError at load).
 */
const BANNER = ["import { createRequire as __gcwalCreateRequire } from 'node:module';", 'const require = __gcwalCreateRequire(import.meta.url);'].join('\n');

/** The single-file CommonJS bundle of agent/wal/cli.ts, beside gcwal.mjs; the launcher runs it for wal-push and wal-fetch. */
const WAL_BUNDLE = 'gcwal-wal.cjs';

/** The lzo helper thread's script (core/codec/lzo/worker.ts), beside the bundles; core/codec/lzo/parallel.ts finds it by this name. */
const LZOP_WORKER = 'lzop-worker.cjs';

const CJS_BANNER = [
  "const __gcwalImportMetaUrl = require('node:url').pathToFileURL(__filename).href;",
  "const __gcwalImportMetaResolve = (specifier) => require('node:url').pathToFileURL(require.resolve(specifier)).href;",
].join('\n');

const { values } = parseArgs({
  options: {
    outdir: { type: 'string', default: 'dist' },
  },
  strict: true,
});

const entry = path.join(root, 'agent/cli.ts');
const outdir = path.resolve(root, values.outdir);
const outfile = path.join(outdir, 'gcwal.mjs');

await mkdir(outdir, { recursive: true });
// A failed build must not leave the previous bundle behind for tests to run,
// and chunk names carry a content hash, so old chunks would pile up.
for (const file of await readdir(outdir)) {
  if (/\.(mjs|cjs)(\.map)?$/.test(file) || file === 'gcwal.externals.json' || file === 'gcwal') await rm(path.join(outdir, file), { force: true });
}
/** What every bundle shares. */
const COMMON = {
  absWorkingDir: root,
  bundle: true,
  platform: 'node',
  target: 'node20',
  // Resolve bare imports from the project's node_modules.
  nodePaths: [path.join(root, 'node_modules')],
  external: [...EXTERNAL_PACKAGES, ...OPTIONAL_ABSENT],
  // Not minified: measured no start-up gain (V8 pre-parses either form in
  // about the same time), and a readable bundle keeps stack traces and
  // error source lines useful without the source map.
  minify: false,
  sourcemap: 'linked',
  sourcesContent: false,
  legalComments: 'none',
  logLevel: 'warning',
  metafile: true,
};

/**
 * The CommonJS bundles. CommonJS has no import.meta: the sources'
 * import.meta.url (for createRequire) and import.meta.resolve (to find the
 * Cloud Storage client's own google-auth-library) get equivalents built from
 * __filename and require.resolve.
 */
const COMMON_CJS = {
  ...COMMON,
  format: 'cjs',
  define: { 'import.meta.url': '__gcwalImportMetaUrl', 'import.meta.resolve': '__gcwalImportMetaResolve', __GCWAL_LZOP_WORKER__: JSON.stringify(LZOP_WORKER) },
  banner: { js: CJS_BANNER },
};

const started = performance.now();
let result;
try {
  result = await esbuild.build({
    ...COMMON,
    entryPoints: { gcwal: entry },
    outdir,
    outExtension: { '.js': '.mjs' },
    // Chunks beside the entry (one flat directory to install), named so a
    // stack trace still says which modules a frame came from.
    chunkNames: '[name]-[hash]',
    splitting: true,
    format: 'esm',
    banner: { js: BANNER },
    define: { __GCWAL_LZOP_WORKER__: JSON.stringify(LZOP_WORKER) },
  });
} catch {
  // esbuild has already printed the errors with file and line.
  process.exit(1);
}

// The WAL entry: wal-push and wal-fetch in one CommonJS file (see
// agent/wal/cli.ts for why), and the lzo helper thread's script.
const walOutfile = path.join(outdir, WAL_BUNDLE);
await rm(walOutfile, { force: true });
await rm(`${walOutfile}.map`, { force: true });
await rm(path.join(outdir, LZOP_WORKER), { force: true });
try {
  const wal = await esbuild.build({ ...COMMON_CJS, entryPoints: [path.join(root, 'agent/wal/cli.ts')], outfile: walOutfile });
  const worker = await esbuild.build({
    ...COMMON_CJS,
    entryPoints: [path.join(root, 'core/codec/lzo/worker.ts')],
    outfile: path.join(outdir, LZOP_WORKER),
    sourcemap: false,
    metafile: false,
  });
  if (wal.warnings.length > 0 || worker.warnings.length > 0) {
    process.stderr.write(`build: ${WAL_BUNDLE} and ${LZOP_WORKER} must build without warnings (import.meta left in CommonJS would be undefined at run time)\n`);
    process.exit(1);
  }
  result.walBytes = wal.metafile.outputs[path.relative(root, walOutfile)]?.bytes ?? 0;
} catch {
  process.exit(1);
}

await writeFile(path.join(outdir, 'gcwal.externals.json'), JSON.stringify(EXTERNAL_PACKAGES, null, 2) + '\n');
// Node from PATH (as `#!/usr/bin/env node` would), the bundle beside the
// launcher wherever npm links it from.
await writeLauncher(path.join(outdir, 'gcwal'));

const outputs = Object.entries(result.metafile.outputs).filter(([file]) => file.endsWith('.mjs'));
const bytes = (file) => result.metafile.outputs[file]?.bytes ?? 0;
const total = outputs.reduce((sum, [, output]) => sum + output.bytes, 0);
const ms = Math.round(performance.now() - started);
process.stdout.write(
  `build: ${path.relative(root, outfile)} ${(bytes(path.relative(root, outfile)) / 1024).toFixed(0)} KiB + ${outputs.length - 1} chunks, ${(total / 1024).toFixed(0)} KiB in all${result.walBytes ? `, ${WAL_BUNDLE} ${(result.walBytes / 1024).toFixed(0)} KiB` : ''}, in ${ms} ms\n`,
);
