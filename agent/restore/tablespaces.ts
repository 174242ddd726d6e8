/**
 * Tablespaces of a restore: where each one goes (its original location unless
 * `--tablespace-map` relocates it) and the tablespace_map file that tells
 * PostgreSQL about it.
 */
import * as path from 'node:path';
import type { BackupMeta, BackupTablespace } from '../../core/backup/meta.ts';
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
 * empty, the entries of its tablespace_map text. Throws CorruptObjectError
 * when an OID is not numeric or a location is not absolute.
 */
export function backupTablespaces(meta: BackupMeta): BackupTablespace[] {
  const where = `backup ${meta.name}`;
  const list = meta.tablespaces && meta.tablespaces.length > 0 ? meta.tablespaces : parseTablespaceMap(meta.tablespaceMap ?? '', where);
  for (const ts of list) {
    if (!/^\d+$/.test(ts.oid) || !path.isAbsolute(ts.location)) {
      throw new CorruptObjectError(`${where} lists tablespace ${quoteForMessage(ts.oid)} at ${quoteForMessage(ts.location)}, which is not an oid and absolute path`, 'the backup metadata is damaged; restore another backup');
    }
  }
  return list;
}

/**
 * Decide where each tablespace goes. `mappings` are `--tablespace-map`
 * values, `OID=/new/path` or `/old/path=/new/path`; the new path must be
 * absolute. Throws UsageError for a mapping that matches no tablespace, maps
 * one twice, or sends two tablespaces (or one and the data directory `dest`)
 * to the same directory.
 */
export function planTablespaces(tablespaces: readonly BackupTablespace[], mappings: readonly string[], dest: string, backupName: string): TablespaceTarget[] {
  const known = tablespaces.map((t) => `${t.oid} (${t.location})`).join(', ') || 'none';
  const relocated = new Map<string, string>();
  for (const mapping of mappings) {
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
  const targets = tablespaces.map((ts) => ({ oid: ts.oid, original: ts.location, target: relocated.get(ts.oid) ?? path.resolve(ts.location) }));
  const used = new Map<string, string>([[path.resolve(dest), 'the data directory']]);
  for (const t of targets) {
    const other = used.get(t.target);
    if (other) throw new UsageError(`tablespace ${t.oid} would be restored into ${t.target}, which is also ${other}`, 'give each tablespace its own directory with --tablespace-map OID=/new/path');
    used.set(t.target, `the target of tablespace ${t.oid}`);
  }
  return targets;
}
