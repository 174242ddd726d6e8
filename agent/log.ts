import type { Writable } from 'node:stream';

export type Severity = 'DEBUG' | 'INFO' | 'NOTICE' | 'WARNING' | 'ERROR';

/** Structured logger: text lines for people or JSON lines for Cloud Logging. Writes to stderr. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export type LogFormat = 'text' | 'json';

/**
 * Build a logger writing to `out`. Text: `gcwal: <message> key=value`.
 * JSON: one object per line with `severity`, `message`, `time` and the fields,
 * which Cloud Logging's agent parses as structured entries.
 */
export function createLogger(out: Writable, format: LogFormat, verbose = false): Logger {
  const emit = (severity: Severity, message: string, fields?: Record<string, unknown>) => {
    if (severity === 'DEBUG' && !verbose) return;
    if (format === 'json') {
      out.write(JSON.stringify({ severity, message, time: new Date().toISOString(), component: 'gcwal', ...fields }) + '\n');
      return;
    }
    const extra = fields
      ? Object.entries(fields)
          .map(([k, v]) => ` ${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
          .join('')
      : '';
    const level = severity === 'INFO' || severity === 'DEBUG' ? '' : `${severity.toLowerCase()}: `;
    out.write(`gcwal: ${level}${message}${extra}\n`);
  };
  return {
    debug: (m, f) => emit('DEBUG', m, f),
    info: (m, f) => emit('INFO', m, f),
    warn: (m, f) => emit('WARNING', m, f),
    error: (m, f) => emit('ERROR', m, f),
  };
}
