/**
 * Tablespaces of a restore: where each one goes (a `--tablespace-map`
 * directory, or the location the backup records when the user confirmed it
 * with `--tablespaces-as-recorded`) and the tablespace_map file that tells
 * PostgreSQL about it.
 */
import * as path from 'node:path';
import type { BackupMeta, BackupTablespace } from '../../core/backup/meta.ts';
import { isTablespaceOid, tablespaceLocationProblem } from '../../core/backup/paths.ts';
import { CorruptObjectError, UsageError } from '../../core/errors.ts';
import { quoteForMessage } from '../../core/wal/quote.ts';

/** One tablespace of the backup and the directory it is restored into. */
export interface TablespaceTarget {
  oid: string;
  /** location on the source host */
  original: string;
  /** absolute directory the files go to, and `pg_tblspc/<oid>` links to */
  target: string;
}

/**
 * Parse PostgreSQL's tablespace_map text: one `<oid> <path>` per line, with
 * `\` escaping the next character (PostgreSQL escapes `\`, CR and LF in paths).
 * Throws CorruptObjectError naming `where` on a malformed line.
 */
export function parseTablespaceMap(text: string, where: string): BackupTablespace[] {
  const out: BackupTablespace[] = [];
  let line = '';
  let escaped = false;
  const finish = () => {
    if (line === '') return;
    const m = /^(\d+) (.+)$/s.exec(line);
    if (!m) throw new CorruptObjectError(`${where} has a malformed tablespace_map line ${quoteForMessage(line)}`);
    out.push({ oid: m[1], location: m[2] });
    line = '';
  };
  for (const ch of text) {
    if (escaped) {
      line += ch;
      escaped = false;
    } else if (ch === '\\') {
      escaped = true;
    } else if (ch === '\n') {
      finish();
    } else {
      line += ch;
    }
  }
  finish();
  return out;
}

/** The tablespace_map text for these targets, escaped the way PostgreSQL writes it. */
export function formatTablespaceMap(targets: readonly TablespaceTarget[]): string {
  return targets.map((t) => `${t.oid} ${t.target.replace(/[\\\r\n]/g, (c) => `\\${c}`)}\n`).join('');
}

/**
 * The backup's tablespaces: the metadata's list, or, when a writer left it
 * empty, the entries of its tablespace_map text. The locations come from the
 * repository, which is untrusted: throws CorruptObjectError naming the field
 * when an OID is not decimal or repeats, or a location is not an absolute,
 * normalised path (see tablespaceLocationProblem).
 */
export function backupTablespaces(meta: BackupMeta): BackupTablespace[] {
  const where = `backup ${meta.name}`;
  const fromList = meta.tablespaces && meta.tablespaces.length > 0;
  const list = fromList ? meta.tablespaces : parseTablespaceMap(meta.tablespaceMap ?? '', where);
  const seen = new Set<string>();
  list.forEach((ts, i) => {
    const field = fromList ? `tablespaces[${i}]` : `tablespaceMap line ${i + 1}`;
    const damaged = (why: string) =>
      new CorruptObjectError(`${where}: ${field} ${why}`, 'the backup metadata is damaged or was not written by gcwal; restore another backup');
    if (!isTablespaceOid(ts.oid)) throw damaged(`has oid ${quoteForMessage(ts.oid)}, which is not an oid (decimal)`);
    if (seen.has(ts.oid)) throw damaged(`has oid ${ts.oid}, which another tablespace has too`);
    seen.add(ts.oid);
    const problem = tablespaceLocationProblem(ts.location);
    if (problem) throw damaged(`has location ${quoteForMessage(ts.location)}, which ${problem}`);
  });
  return list;
}

/** What the user asked for the tablespaces. */
export interface TablespaceRequest {
  /** `--tablespace-map` values, `OID=/new/path` or `/old/path=/new/path` */
  mappings: readonly string[];
  /** `--tablespaces-as-recorded`: restore the tablespaces not mapped to the locations the backup records */
  asRecorded: boolean;
}

/** Whether `inner` is `outer` or inside it (both absolute and resolved). */
function within(inner: string, outer: string): boolean {
  return inner === outer || inner.startsWith(outer.endsWith('/') ? outer : `${outer}/`);
}

/**
 * Decide where each tablespace goes: a mapped one to its new path (which
 * must be absolute), any other to the location the backup records, but only
 * when `request.asRecorded` confirms it; those locations come from the
 * repository and restore would write outside the data directory.
 *
 * Throws UsageError, before anything is written, naming the tablespaces
 * whose recorded locations were not confirmed (with the options that
 * confirm them), and for a mapping that matches no tablespace, maps one
 * twice, or sends a tablespace to a directory that is, holds or lies inside
 * the data directory `dest` or another tablespace's directory.
 */
export function planTablespaces(tablespaces: readonly BackupTablespace[], request: TablespaceRequest, dest: string, backupName: string): TablespaceTarget[] {
  const known = tablespaces.map((t) => `${t.oid} (${t.location})`).join(', ') || 'none';
  const relocated = new Map<string, string>();
  for (const mapping of request.mappings) {
    const eq = mapping.indexOf('=');
    const from = eq > 0 ? mapping.slice(0, eq) : '';
    const to = eq > 0 ? mapping.slice(eq + 1) : '';
    if (from === '' || !path.isAbsolute(to)) {
      throw new UsageError(`invalid --tablespace-map ${quoteForMessage(mapping)}`, 'write OID=/new/path or /old/path=/new/path with an absolute new path');
    }
    const ts = /^\d+$/.test(from) ? tablespaces.find((t) => t.oid === from) : tablespaces.find((t) => path.resolve(t.location) === path.resolve(from));
    if (!ts) throw new UsageError(`--tablespace-map ${quoteForMessage(mapping)} matches no tablespace of backup ${backupName}`, `its tablespaces: ${known}`);
    if (relocated.has(ts.oid)) throw new UsageError(`tablespace ${ts.oid} is mapped twice`, 'give one --tablespace-map per tablespace');
    relocated.set(ts.oid, path.resolve(to));
  }
  const unconfirmed = tablespaces.filter((t) => !relocated.has(t.oid));
  if (unconfirmed.length > 0 && !request.asRecorded) {
    const list = unconfirmed.map((t) => `${t.oid} at ${quoteForMessage(t.location, 200)}`).join(', ');
    throw new UsageError(
      `backup ${backupName} restores tablespace${unconfirmed.length === 1 ? '' : 's'} ${list}, outside the data directory; locations from the repository are used only when confirmed`,
      `pass --tablespaces-as-recorded to restore ${unconfirmed.length === 1 ? 'it' : 'them'} there, or --tablespace-map OID=/new/dir for each`,
    );
  }
  const targets = tablespaces.map((ts) => ({ oid: ts.oid, original: ts.location, target: relocated.get(ts.oid) ?? path.resolve(ts.location) }));
  const used: [string, string][] = [[path.resolve(dest), 'the data directory']];
  for (const t of targets) {
    for (const [dir, what] of used) {
      if (t.target === dir)
        throw new UsageError(
          `tablespace ${t.oid} would be restored into ${t.target}, which is also ${what}`,
          'give each tablespace its own directory with --tablespace-map OID=/new/path',
        );
      if (within(t.target, dir) || within(dir, t.target)) {
        throw new UsageError(
          `tablespace ${t.oid} would be restored into ${t.target}, which overlaps ${what} ${dir}`,
          'give each tablespace a directory outside the data directory and the other tablespaces with --tablespace-map OID=/new/path',
        );
      }
    }
    used.push([t.target, `the target of tablespace ${t.oid}`]);
  }
  return targets;
}
