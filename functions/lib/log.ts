/**
 * Structured logs for Cloud Functions: one JSON object per line on stdout,
 * with the `severity` and `message` fields Cloud Logging understands. The
 * sink is injected so tests can read what a handler logged.
 */
export type Severity = 'DEBUG' | 'INFO' | 'WARNING' | 'ERROR' | 'CRITICAL';

export interface FunctionLogger {
  log(severity: Severity, message: string, fields?: Record<string, unknown>): void;
}

/** A logger writing JSON lines to `write` (stdout by default at the edge). */
export function jsonLogger(write: (line: string) => void, base: Record<string, unknown> = {}): FunctionLogger {
  return {
    log(severity, message, fields = {}) {
      write(JSON.stringify({ severity, message, ...base, ...fields }) + '\n');
    },
  };
}
