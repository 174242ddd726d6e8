/** Types for agent/wal/launcher.mjs (plain JavaScript, so that scripts/build.mjs runs it without TypeScript), for the TypeScript that imports it. */

/** The settings of the launcher template. */
export interface LauncherOptions {
  /** the Node binary: a command name looked up on PATH, or a path; default `node` */
  node?: string;
  /** options for Node, before the bundle */
  nodeArgs?: readonly string[];
  /** the bundle's path; '' (default): gcwal.mjs beside the launcher, after following symbolic links */
  bundle?: string;
}

/** Absolute path of agent/wal/launcher.sh. */
export const LAUNCHER_TEMPLATE: string;
/** Single-quote a value for /bin/sh. */
export function shellQuote(value: string): string;
/** Fill the template text; throws when a placeholder is missing or repeated, or `node` is empty. */
export function fillLauncher(template: string, options?: LauncherOptions): string;
/** fillLauncher applied to agent/wal/launcher.sh. */
export function renderLauncher(options?: LauncherOptions): Promise<string>;
/** Write the rendered launcher to `file`, mode 0755, atomically (temporary name, rename). */
export function writeLauncher(file: string, options?: LauncherOptions): Promise<void>;
