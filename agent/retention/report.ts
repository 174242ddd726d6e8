/**
 * What `gcwal delete` prints: the plan (per backup, the WAL to delete as
 * runs, counts, the window left, warnings) and, after --confirm, what was
 * deleted. Pure; the JSON form is a stable interface documented in
 * docs/status-and-retention.md.
 */
import { walEntry } from '../../core/catalogue/runs.ts';
import type { Catalogue } from '../../core/catalogue/types.ts';
import { backupNameFromKey, walFileNameFromKey } from '../../core/layout.ts';
import type { ExecutionReport } from '../../core/retention/execute.ts';
import type { PlannedObject, RetentionPlan, RetentionPolicy } from '../../core/retention/plan.ts';
import { plannedCount } from '../../core/retention/planned.ts';
import { walPosition } from '../../core/retention/wal-items.ts';
import { formatBytes } from '../progress.ts';
import { pointTime } from '../status/format.ts';
import type { AgentValidation } from './listing.ts';

/** What `gcwal delete --json` prints. */
export interface DeleteReport {
  format: 1;
  /** true unless --confirm was given */
  dryRun: boolean;
  repository: string;
  /** `catalogue`: planned over the pipeline's catalogue; `listing`: over a listing, with what the agent read itself */
  source: 'catalogue' | 'listing';
  catalogue: string;
  policy: { retainFull: number | null; retainDays: number | null; walRetainDays: number | null };
  /** for a listing: the backups and WAL the agent read before trusting them; null with a catalogue */
  agentValidation: AgentValidation | null;
  plan: RetentionPlan;
  totals: { deleteObjects: number; deleteBytes: number; deleteBackups: number; deleteWal: number; keepObjects: number };
  /** after --confirm: what was deleted and what was left because it changed after planning; null for a dry run */
  result: { deleted: number; deletedBytes: number; skipped: { key: string; why: string }[] } | null;
}

/** Stored bytes of a planned object as the catalogue knows them (0 when it does not: manifests). */
function sizeOf(catalogue: Catalogue, o: PlannedObject): number {
  const name = walFileNameFromKey(o.key);
  // A range of a run's segments: their run's mean size each (what walEntry gives a folded segment).
  if (name !== undefined) return (walEntry(catalogue, name)?.size ?? 0) * (o.count ?? 1);
  if (o.kind === 'part') return catalogue.parts[o.key]?.size ?? 0;
  return 0;
}

function bytes(catalogue: Catalogue, objects: readonly PlannedObject[]): number {
  return objects.reduce((n, o) => n + sizeOf(catalogue, o), 0);
}

/** Assemble the report. `execution` is undefined for a dry run. */
export function buildDeleteReport(args: {
  repository: string;
  source: 'catalogue' | 'listing';
  catalogueLocation: string;
  catalogue: Catalogue;
  policy: RetentionPolicy;
  plan: RetentionPlan;
  validation: AgentValidation | undefined;
  execution: ExecutionReport | undefined;
}): DeleteReport {
  const { plan, catalogue, execution } = args;
  return {
    format: 1,
    dryRun: execution === undefined,
    repository: args.repository,
    source: args.source,
    catalogue: args.catalogueLocation,
    policy: { retainFull: args.policy.retainFull ?? null, retainDays: args.policy.retainDays ?? null, walRetainDays: args.policy.walRetainDays ?? null },
    agentValidation: args.validation ?? null,
    plan,
    totals: {
      deleteObjects: plannedCount(plan.delete),
      deleteBytes: bytes(catalogue, plan.delete),
      deleteBackups: plan.deletedBackups.length,
      deleteWal: plannedCount(plan.delete.filter((o) => walFileNameFromKey(o.key) !== undefined)),
      keepObjects: plannedCount(plan.keep),
    },
    result:
      execution === undefined
        ? null
        : {
            deleted: execution.deleted.length,
            deletedBytes: bytes(catalogue, execution.deleted),
            skipped: execution.skipped.map((s) => ({ key: s.object.key, why: s.why })),
          },
  };
}

/** Deleted WAL as lines: consecutive segments of one timeline with one reason as a run, then the other files one by one. */
function walLines(objects: readonly PlannedObject[]): string[] {
  const lines: string[] = [];
  const others: string[] = [];
  let run: { first: string; last: string; count: number; timeline?: number; code: string; position: bigint } | undefined;
  const flush = () => {
    if (run)
      lines.push(`  ${run.first === run.last ? run.first : `${run.first}..${run.last}`}  ${run.count} segment${run.count === 1 ? '' : 's'} (${run.code})`);
    run = undefined;
  };
  for (const o of objects) {
    const name = walFileNameFromKey(o.key);
    if (name === undefined) continue;
    const position = o.kind === 'segment' ? walPosition(name) : undefined;
    if (position === undefined) {
      others.push(`  ${name}  (${o.code})`);
    } else {
      // A range (a run's segments planned alike) continues or starts a line as a whole.
      const lastName = o.through !== undefined ? (walFileNameFromKey(o.through) ?? name) : name;
      const lastPosition = walPosition(lastName) ?? position;
      const count = o.count ?? 1;
      if (run && run.timeline === o.timeline && run.code === o.code && position === run.position + 1n) {
        run.last = lastName;
        run.count += count;
        run.position = lastPosition;
      } else {
        flush();
        run = { first: name, last: lastName, count, timeline: o.timeline, code: o.code, position: lastPosition };
      }
    }
  }
  flush();
  return [...lines, ...others];
}

function policyText(p: DeleteReport['policy']): string {
  const parts: string[] = [];
  if (p.retainFull !== null) parts.push(`retain-full ${p.retainFull}`);
  if (p.retainDays !== null) parts.push(`retain-days ${p.retainDays}`);
  if (p.walRetainDays !== null) parts.push(`wal-retain-days ${p.walRetainDays}`);
  return parts.join(', ');
}

/** The plan as text for people (everything but the outcome), ending with a newline. */
export function formatDeletePlan(r: DeleteReport): string {
  const out: string[] = [];
  const head = (name: string, value: string) => out.push(`${name.padEnd(12)} ${value}`);
  head('mode', r.dryRun ? 'dry run: nothing is deleted without --confirm' : 'deleting (--confirm)');
  head('repository', r.repository);
  head('policy', policyText(r.policy));
  if (r.source === 'catalogue') {
    head('source', `the pipeline's catalogue ${r.catalogue}`);
  } else {
    head('source', `a listing of the repository (no catalogue at ${r.catalogue}): the agent read what the plan keeps before trusting it`);
    const v = r.agentValidation!;
    for (const b of v.backups) head('read', `backup ${b.name}: ${b.ok ? 'valid' : `failed: ${b.problem}`}`);
    if (v.backups.length === 0) head('read', 'nothing: the plan keeps no backup it could rest on');
    else
      head(
        'read',
        `${v.walSegments} WAL segment${v.walSegments === 1 ? '' : 's'}${v.corruptWal.length ? `, ${v.corruptWal.length} failed (${v.corruptWal.map((c) => c.name).join(', ')})` : ', all valid'}; ${formatBytes(v.bytesRead)} in all`,
      );
    if (r.plan.delete.length > 0) head('not read', 'what is deleted: older than the oldest kept valid backup, its content no longer matters');
  }
  out.push('');
  out.push('backups');
  if (r.plan.backups.length === 0) out.push('  none');
  for (const b of r.plan.backups) {
    out.push(`  ${b.action === 'delete' ? 'DELETE' : 'keep  '}  ${b.name}  ${b.code}: ${b.reason}`);
  }
  const wal = walLines(r.plan.delete);
  if (wal.length > 0) {
    out.push('');
    out.push('wal to delete');
    out.push(...wal);
  }
  const other = r.plan.delete.filter((o) => walFileNameFromKey(o.key) === undefined && backupNameFromKey(o.key) === undefined);
  for (const o of other) out.push(`  ${o.key}  (${o.code})`);
  out.push('');
  const w = r.plan.window;
  head(
    'window',
    w.from !== undefined
      ? `once applied, restorable from ${pointTime(w.from)} (${w.fromLsn}, end of backup ${w.backup}) on`
      : 'no kept backup is restorable: nothing is deleted',
  );
  const t = r.totals;
  head(
    'to delete',
    `${t.deleteObjects} object${t.deleteObjects === 1 ? '' : 's'} (${formatBytes(t.deleteBytes)}): ${t.deleteBackups} backup${t.deleteBackups === 1 ? '' : 's'}, ${t.deleteWal} WAL file${t.deleteWal === 1 ? '' : 's'}`,
  );
  const keptCodes = r.plan.reasons
    .filter((c) => c.action === 'keep')
    .map((c) => `${c.code} ${c.objects}`)
    .join(', ');
  head('to keep', `${t.keepObjects} object${t.keepObjects === 1 ? '' : 's'}${keptCodes ? ` (${keptCodes})` : ''}`);
  if (r.plan.warnings.length > 0) {
    out.push('');
    out.push('warnings');
    for (const warning of r.plan.warnings) out.push(`  - ${warning}`);
  }
  return out.join('\n') + '\n';
}

/** The last lines: what a dry run would do, or what was deleted. */
export function formatDeleteOutcome(r: DeleteReport): string {
  const out: string[] = [''];
  const t = r.totals;
  if (r.result === null) {
    out.push(
      t.deleteObjects === 0
        ? 'dry run: nothing to delete'
        : `dry run: nothing was deleted; run again with --confirm to delete these ${t.deleteObjects} object${t.deleteObjects === 1 ? '' : 's'}`,
    );
  } else {
    out.push(`deleted ${r.result.deleted} object${r.result.deleted === 1 ? '' : 's'} (${formatBytes(r.result.deletedBytes)})`);
    for (const s of r.result.skipped) out.push(`  skipped ${s.key}: ${s.why}`);
  }
  return out.join('\n') + '\n';
}

/** The whole report as text: the plan, then the outcome. */
export function formatDeleteReport(r: DeleteReport): string {
  return formatDeletePlan(r) + formatDeleteOutcome(r);
}
