/**
 * The sh launcher: agent/wal/launcher.sh is a template with three settings
 * (the Node binary, its options, the bundle); this module fills them in and
 * writes the executable. scripts/build.mjs writes dist/gcwal with it (Node
 * from PATH, the bundle found beside the launcher), and the test harness
 * (local/testkit/install.ts) writes its installed copy's wrapper with it, so
 * tests and benches run the same launcher, fast path included.
 */
import { chmod, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

/** Absolute path of the template. */
export const LAUNCHER_TEMPLATE = fileURLToPath(new URL('./launcher.sh', import.meta.url));

/** The placeholders of the template, each present exactly once. */
const PLACEHOLDERS = ['@NODE@', '@NODE_ARGS@', '@BUNDLE@'];

/** Single-quote `value` for /bin/sh (any byte but NUL survives). */
export function shellQuote(value) {
  return `'${String(value).replaceAll("'", "'\\''")}'`;
}

/**
 * Fill `template` (the text of launcher.sh). `node`: a command name looked up
 * on PATH or a path (default `node`); `nodeArgs`: options for Node before the
 * bundle; `bundle`: the bundle's path, or '' (default) for gcwal.mjs beside
 * the launcher after following symbolic links. Throws when the template lacks
 * a placeholder or holds one twice, or `node` is empty.
 */
export function fillLauncher(template, { node = 'node', nodeArgs = [], bundle = '' } = {}) {
  if (!node) throw new Error('launcher: the Node binary is empty');
  for (const placeholder of PLACEHOLDERS) {
    if (template.split(placeholder).length !== 2) throw new Error(`launcher: the template must hold ${placeholder} exactly once`);
  }
  return template
    .replace('@NODE_ARGS@', () => nodeArgs.map(shellQuote).join(' '))
    .replace('@NODE@', () => shellQuote(node))
    .replace('@BUNDLE@', () => shellQuote(bundle));
}

/** fillLauncher applied to agent/wal/launcher.sh. */
export async function renderLauncher(options = {}) {
  return fillLauncher(await readFile(LAUNCHER_TEMPLATE, 'utf8'), options);
}

/**
 * Write the rendered launcher to `file`, mode 0755, through a temporary name
 * and a rename, so a running archiver never executes half a script.
 */
export async function writeLauncher(file, options = {}) {
  const text = await renderLauncher(options);
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, text, { mode: 0o755 });
    // writeFile's mode is masked by the umask; the launcher must be executable by everyone.
    await chmod(tmp, 0o755);
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
