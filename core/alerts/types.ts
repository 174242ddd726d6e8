import type { AlertKind, AlertSeverity } from '../catalogue/types.ts';

/**
 * A message on the alerts topic (`gcwal-alerts`), JSON in the message data.
 * `status: 'open'` announces an incident once; `status: 'resolved'` with the
 * same `id` says it cleared. Consumers dedupe on `id` + `status`.
 */
export interface AlertMessage {
  format: 1;
  id: string;
  status: 'open' | 'resolved';
  severity: AlertSeverity;
  /** system identifier, decimal string; `unknown` before the repository has one */
  cluster: string;
  kind: AlertKind;
  /** one line a person understands */
  summary: string;
  details: Record<string, unknown>;
  /** repository URL */
  repository: string;
  /** ISO */
  time: string;
}

/**
 * A message on the events topic (`gcwal-events`): validation outcomes and
 * prune results, JSON in the message data.
 */
export type PipelineEventMessage =
  | {
      format: 1;
      kind: 'validated';
      repository: string;
      key: string;
      generation: string;
      ok: boolean;
      problem?: string;
      time: string;
      rawSize?: number;
      durationMs?: number;
    }
  | {
      format: 1;
      kind: 'pruned';
      repository: string;
      dryRun: boolean;
      deleted: { key: string; reason: string }[];
      skipped: { key: string; reason: string }[];
      deletedBackups: string[];
      keptBackups: string[];
      kept: number;
      warnings: string[];
      time: string;
    };
