import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeLauncher } from '../../agent/wal/launcher.mjs';
import { execOk } from './exec.ts';
import { makeTempDir } from './tmp.ts';
import { assertReachableByOthers, runningAsRoot } from './users.ts';

/** The project root (local/testkit/../..). */
export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** A built gcwal copied where the postgres user can run it. */
export interface InstalledAgent {
  /** absolute path of the executable `gcwal` launcher (agent/wal/launcher.sh): use it in archive_command and with runGcwal */
  command: string;
  /** the install directory: gcwal.mjs, its chunks (*.mjs), their source maps, node_modules with the external packages */
  dir: string;
  /** remove the install directory */
  cleanup(): Promise<void>;
}

export interface InstallOptions {
  /** directory holding the build output; default <project>/dist */
  distDir?: string;
  /** extra node options for the wrapper, e.g. ['--enable-source-maps'] */
  nodeArgs?: readonly string[];
  /**
   * the Node binary the wrapper runs; default this process's. A test points
   * it at a program that records or refuses its calls, to see which calls
   * the launcher answers without Node.
   */
  node?: string;
}

/**
 * Copy the bundled CLI (dist/gcwal.mjs, the chunks it imports, dist/gcwal-wal.cjs, every
 * dist/*.mjs, and their source maps) and the external
 * packages it loads at run time (listed by the build in
 * dist/gcwal.externals.json, plus their dependencies, found by reading each
 * package.json recursively) into a fresh world-readable temp directory, and
 * write the executable `gcwal` launcher beside it from the same template as
 * the build's dist/gcwal (agent/wal/launcher.sh, fast path included), running
 * it with this Node.
 *
 * Why a copy: archive_command runs gcwal as the postgres user, and CI may
 * check the project out under a directory only root can enter (/root/...).
 * Call it once per test file, in `test.before`, and `cleanup` in
 * `test.after.always`. Rejects with "run npm run build" when there is no build,
 * and when this Node binary is not executable by other users.
 */
export async function installAgent(options: InstallOptions = {}): Promise<InstalledAgent> {
  const dist = options.distDir ?? path.join(projectRoot, 'dist');
  const bundle = path.join(dist, 'gcwal.mjs');
  if (!existsSync(bundle)) throw new Error(`${bundle} does not exist: run npm run build`);
  const node = options.node ?? process.execPath;
  if (runningAsRoot()) {
    await assertReachableByOthers(node, 'execute', 'install Node where every user can run it (e.g. /usr/bin/node)');
  }
  const externals = JSON.parse(await readFile(path.join(dist, 'gcwal.externals.json'), 'utf8')) as string[];
  const packages = await runtimePackages(externals, projectRoot);

  const tmp = await makeTempDir('agent');
  try {
    // The build splits the CLI into the entry and chunks beside it, plus the WAL entry gcwal-wal.cjs (scripts/build.mjs).
    for (const file of await readdir(dist)) {
      if (/\.(mjs|cjs)(\.map)?$/.test(file)) await copyFile(path.join(dist, file), path.join(tmp.path, file));
    }
    await copyPackages(packages, projectRoot, tmp.path);
    const command = path.join(tmp.path, 'gcwal');
    await writeLauncher(command, { node, nodeArgs: options.nodeArgs ?? [], bundle: path.join(tmp.path, 'gcwal.mjs') });
    // A checkout made with umask 077 would give postgres nothing to read.
    // X: execute only for directories and files that were executable already.
    await execOk('chmod', ['-R', 'u=rwX,go=rX', tmp.path]);
    return { command, dir: tmp.path, cleanup: tmp.cleanup };
  } catch (err) {
    await tmp.cleanup();
    throw err;
  }
}

/**
 * The package directories needed at run time for `names`: each package, and
 * recursively its `dependencies` and installed `optionalDependencies`, resolved
 * the way Node does (nearest node_modules first, then upwards, but not above
 * `root`). Type-only `@types/*` packages are left out. Directories nested
 * inside another returned directory are omitted since copying the outer one
 * brings them along. Rejects when a required package is not installed.
 */
export async function runtimePackages(names: readonly string[], root: string): Promise<string[]> {
  const found = new Set<string>();
  const visit = async (name: string, fromDir: string, optional: boolean): Promise<void> => {
    if (name.startsWith('@types/')) return;
    const dir = resolvePackageDir(name, fromDir, root);
    if (dir === undefined) {
      if (optional) return;
      throw new Error(`package ${name} (needed at run time by the bundle) is not installed under ${root}: run npm ci`);
    }
    if (found.has(dir)) return;
    found.add(dir);
    const manifest = JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
      optionalDependencies?: Record<string, string>;
    };
    const optionalDeps = Object.keys(manifest.optionalDependencies ?? {});
    for (const dep of Object.keys(manifest.dependencies ?? {})) await visit(dep, dir, optionalDeps.includes(dep));
    for (const dep of optionalDeps) await visit(dep, dir, true);
  };
  for (const name of names) await visit(name, root, false);
  const dirs = [...found].sort();
  return dirs.filter((dir) => !dirs.some((outer) => outer !== dir && dir.startsWith(outer + path.sep)));
}

/** Node's lookup: <dir>/node_modules/<name> for `fromDir` and each ancestor up to `root`. */
function resolvePackageDir(name: string, fromDir: string, root: string): string | undefined {
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    if (path.basename(dir) !== 'node_modules') {
      const candidate = path.join(dir, 'node_modules', name);
      if (existsSync(path.join(candidate, 'package.json'))) return candidate;
    }
    if (dir === root || !dir.startsWith(root + path.sep)) return undefined;
  }
}

/**
 * Copy each package directory to the same place relative to `to` as it has
 * relative to `from`. coreutils cp, one call per destination directory:
 * several times faster than fs.cp for the ~700 small files involved.
 */
async function copyPackages(dirs: readonly string[], from: string, to: string): Promise<void> {
  const byParent = new Map<string, string[]>();
  for (const dir of dirs) {
    const parent = path.dirname(path.join(to, path.relative(from, dir)));
    byParent.set(parent, [...(byParent.get(parent) ?? []), dir]);
  }
  for (const [parent, sources] of byParent) {
    await mkdir(parent, { recursive: true });
    await execOk('cp', ['-R', '--', ...sources, parent]);
  }
}
