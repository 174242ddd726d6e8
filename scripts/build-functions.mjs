#!/usr/bin/env node
/**
 * Bundle the Cloud Functions, one deployable source archive per function:
 *
 *   dist/functions/<name>/index.mjs     the function and everything it imports, one file
 *   dist/functions/<name>/package.json  type module, main index.mjs, and only the
 *                                       packages that cannot be bundled, pinned to
 *                                       the versions in package-lock.json
 *   dist/functions/<name>.zip           those two files: what Terraform uploads
 *                                       (terraform/modules/pipeline) and Cloud
 *                                       Functions builds (npm install, then the
 *                                       functions-framework with --target=<name>)
 *   dist/functions/index.mjs            all four in one file (functions/index.ts),
 *                                       for the local stack, resolving packages
 *                                       from the project's node_modules
 *
 * One file per function keeps a cold start to loading one module: no module
 * resolution across hundreds of files, none of the other functions' code.
 *
 * What stays external, and why:
 * - @google-cloud/functions-framework: the platform starts the framework from
 *   the function's node_modules and the module registers into *that* copy's
 *   registry (`cloudEvent('<name>', handler)`); a bundled copy would register
 *   into a registry nobody serves.
 * - native addons (zstd-napi, fast-crc32c and its optional sse4_crc32), which
 *   load .node files relative to their package, and lzo-wasm, which reads its
 *   .wasm from its package directory (require.resolve('lzo-wasm/lzo-wasm.wasm')):
 *   npm installs them in the function's build, next to the bundle.
 * - @google-cloud/storage (core/storage/gcs/library.ts loads it, and
 *   core/storage/gcs/token.ts the google-auth-library it depends on, with
 *   createRequire) and
 *   @google-cloud/pubsub (loads .proto/.json files at run time).
 * A package becomes a dependency of a function only if its bundle refers to
 * it. `lzo` (the native LZO encoder) never does: the functions only decode,
 * with lzo-wasm, and never compress.
 *
 * Usage: node scripts/build-functions.mjs [--src <dir>] [--outdir <dir>] [--list]
 *   --src     directory holding <name>.ts for each function and index.ts (default functions)
 *   --outdir  default dist/functions
 *   --list    print the function names as a JSON array and exit (tests compare
 *             them with Terraform's)
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { isBuiltin } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as esbuild from 'esbuild';
import { zipFiles } from './zip.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Every function, by the name it registers with `cloudEvent` and the file that registers it. */
const FUNCTION_NAMES = ['validate', 'catalogue', 'prune', 'watchdog'];

/** Loaded from node_modules at run time; see the header for why each. */
const EXTERNAL_PACKAGES = [
  '@google-cloud/functions-framework',
  '@google-cloud/pubsub',
  '@google-cloud/storage',
  'fast-crc32c',
  'sse4_crc32',
  'lzo',
  'lzo-wasm',
  'zstd-napi',
];

/** Always a dependency: the platform runs it (`functions-framework --target=<name>`). */
const FRAMEWORK = '@google-cloud/functions-framework';

/**
 * External but never shipped: `lzo` is the agent's native encoder (the
 * functions decode with lzo-wasm); `sse4_crc32` comes with fast-crc32c as
 * its optional dependency, at the version fast-crc32c asks for.
 */
const NOT_SHIPPED = new Set(['lzo', 'sse4_crc32']);

/**
 * Loaded by an external package's own createRequire (core/storage/gcs/token.ts takes
 * google-auth-library from @google-cloud/storage's dependencies, so the two
 * always match): installed with that package, not listed separately.
 */
const INSTALLED_WITH = { 'google-auth-library': '@google-cloud/storage' };

/** Optional peers bundled packages require() inside try/catch; absent on purpose. */
const OPTIONAL_ABSENT = ['pg-native'];

/** Same `require` shim as scripts/build.mjs: CommonJS code bundled into an ES module needs one. */
const BANNER = ["import { createRequire as __gcwalCreateRequire } from 'node:module';", 'const require = __gcwalCreateRequire(import.meta.url);'].join('\n');

const { values } = parseArgs({
  options: {
    src: { type: 'string', default: 'functions' },
    outdir: { type: 'string', default: 'dist/functions' },
    list: { type: 'boolean', default: false },
  },
  strict: true,
});

if (values.list) {
  process.stdout.write(JSON.stringify(FUNCTION_NAMES) + '\n');
  process.exit(0);
}

const src = path.resolve(root, values.src);
const outdir = path.resolve(root, values.outdir);

const missing = FUNCTION_NAMES.filter((name) => !existsSync(path.join(src, `${name}.ts`)));
if (missing.length > 0) {
  process.stderr.write(
    `build-functions: ${missing.map((name) => path.relative(root, path.join(src, `${name}.ts`))).join(', ')} missing (each function is one file registering cloudEvent('<name>', ...))\n`,
  );
  process.exit(1);
}

const lock = JSON.parse(await readFile(path.join(root, 'package-lock.json'), 'utf8'));
const rootPackage = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8'));

/** The exact version package-lock.json installed for `name`. */
function lockedVersion(name) {
  const version = lock.packages?.[`node_modules/${name}`]?.version;
  if (!version) throw new Error(`${name} is not in package-lock.json: add it to package.json and run npm install`);
  return version;
}

/**
 * Bare module specifiers a bundle still loads at run time: require('x') (also
 * through a createRequire'd `require2`, as esbuild renames a module's own),
 * import('x'), `from 'x'`, require.resolve('x/...'), import.meta.resolve('x').
 * Returned as package names (`@scope/name` or `name`), builtins excluded.
 */
function runtimePackages(code) {
  const found = new Set();
  const pattern =
    /(?:\brequire\d*(?:\.resolve)?|\bimport(?:\.meta\.resolve)?|\bcreateRequire\d*\([^()]*(?:\([^()]*\))?[^()]*\))\s*\(\s*(['"])([^'"\n]+)\1|\bfrom\s*(['"])([^'"\n]+)\3/g;
  for (const m of code.matchAll(pattern)) {
    const spec = m[2] ?? m[4];
    if (spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('node:') || isBuiltin(spec)) continue;
    const parts = spec.split('/');
    found.add(spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]);
  }
  return found;
}

async function bundle(entry, outfile) {
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    // Cloud Functions runs nodejs22; the local stack may run the combined
    // bundle on Node 20, which package.json still supports.
    target: 'node20',
    format: 'esm',
    nodePaths: [path.join(root, 'node_modules')],
    external: [...EXTERNAL_PACKAGES, ...OPTIONAL_ABSENT],
    banner: { js: BANNER },
    // Not minified, as the agent's bundle: no measured start-up gain, and
    // readable stack traces in Cloud Logging without uploading source maps.
    minify: false,
    legalComments: 'none',
    logLevel: 'warning',
    write: false,
  });
  const [output] = result.outputFiles;
  return output.contents;
}

await mkdir(outdir, { recursive: true });
// Remove only what this script writes: a stale bundle must not be deployed
// after a failed build, and --outdir may point somewhere shared.
for (const name of FUNCTION_NAMES) {
  await rm(path.join(outdir, name), { recursive: true, force: true });
  await rm(path.join(outdir, `${name}.zip`), { force: true });
}
await rm(path.join(outdir, 'index.mjs'), { force: true });

const started = performance.now();
const lines = [];
try {
  for (const name of FUNCTION_NAMES) {
    const code = await bundle(path.join(src, `${name}.ts`), path.join(outdir, name, 'index.mjs'));
    const text = Buffer.from(code).toString('utf8');
    const referenced = runtimePackages(text);
    const unknown = [...referenced].filter(
      (pkg) => !EXTERNAL_PACKAGES.includes(pkg) && !OPTIONAL_ABSENT.includes(pkg) && !referenced.has(INSTALLED_WITH[pkg] ?? ''),
    );
    if (unknown.length > 0) {
      // Left in the bundle by a bundled package's dynamic require (an
      // optional feature); not installed in the function, so it must stay
      // behind a try/catch there. Said out loud so a new one gets a look.
      process.stderr.write(`build-functions: ${name}: not bundled and not installed: ${unknown.join(', ')}\n`);
    }
    const shipped = [FRAMEWORK, ...[...referenced].filter((pkg) => EXTERNAL_PACKAGES.includes(pkg) && !NOT_SHIPPED.has(pkg))];
    const dependencies = Object.fromEntries([...new Set(shipped)].sort().map((pkg) => [pkg, lockedVersion(pkg)]));
    const manifest = {
      name: `gcwal-function-${name}`,
      version: rootPackage.version,
      private: true,
      description: `gcwal Cloud Function ${name} (bundled by scripts/build-functions.mjs)`,
      license: rootPackage.license,
      type: 'module',
      main: 'index.mjs',
      dependencies,
    };
    const manifestBytes = Buffer.from(JSON.stringify(manifest, null, 2) + '\n');
    const dir = path.join(outdir, name);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'index.mjs'), code);
    await writeFile(path.join(dir, 'package.json'), manifestBytes);
    const zip = zipFiles([
      { name: 'index.mjs', data: code },
      { name: 'package.json', data: manifestBytes },
    ]);
    await writeFile(path.join(outdir, `${name}.zip`), zip);
    lines.push(`${name} ${(code.length / 1024).toFixed(0)} KiB (zip ${(zip.length / 1024).toFixed(0)} KiB; installs ${Object.keys(dependencies).join(', ')})`);
  }
  const combined = path.join(src, 'index.ts');
  if (existsSync(combined)) {
    const code = await bundle(combined, path.join(outdir, 'index.mjs'));
    await writeFile(path.join(outdir, 'index.mjs'), code);
    lines.push(`index.mjs (all functions, for the local stack) ${(code.length / 1024).toFixed(0)} KiB`);
  }
} catch (err) {
  // esbuild has already printed its errors with file and line.
  if (!(err && Array.isArray(err.errors))) process.stderr.write(`build-functions: ${err?.message ?? err}\n`);
  process.exit(1);
}

const ms = Math.round(performance.now() - started);
process.stdout.write(`build-functions: ${path.relative(root, outdir)}/ in ${ms} ms\n${lines.map((line) => `  ${line}\n`).join('')}`);
