import type { Writable } from 'node:stream';

/** Options of createProgress. */
export interface ProgressOptions {
  /** where the line goes (stderr) */
  out: Writable;
  /** draw only when true (stderr is a terminal); otherwise every call is a no-op */
  interactive: boolean;
  /** expected bytes, for percentage and ETA; unknown when undefined */
  totalBytes?: number;
  /** expected files, shown as `done/total` */
  totalFiles?: number;
  /** what is going on, e.g. "backup base_000000010000000000000004" */
  label: string;
  /** clock in milliseconds (tests); defaults to Date.now */
  now?: () => number;
  /** minimum milliseconds between redraws (default 200) */
  intervalMs?: number;
}

/** A progress display for long work (backup push, backup fetch). */
export interface Progress {
  /** count `bytes` (and `files`) more as done; redraws at most every intervalMs */
  add(bytes: number, files?: number): void;
  /** draw the final state and end the line; later calls to add are ignored */
  done(): void;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** `1536` → `1.5 KiB`; binary units, whole bytes, one decimal above. */
export function formatBytes(n: number): string {
  let value = n;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${Math.round(value)} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

/** Seconds as `m:ss` or `h:mm:ss`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/**
 * A progress reporter. On a terminal it keeps one line on `out` up to date
 * (carriage return + clear line): label, bytes done (of total), rate, files,
 * ETA. When not interactive it writes nothing at all, so logs and pipes stay
 * clean; callers log their own summary either way.
 */
export function createProgress(options: ProgressOptions): Progress {
  const now = options.now ?? Date.now;
  const interval = options.intervalMs ?? 200;
  const started = now();
  let bytes = 0;
  let files = 0;
  let lastDraw = -Infinity;
  let finished = false;

  const line = (): string => {
    const elapsed = (now() - started) / 1000;
    const rate = elapsed > 0 ? bytes / elapsed : 0;
    const parts = [options.label];
    const { totalBytes, totalFiles } = options;
    if (totalBytes !== undefined && totalBytes > 0) {
      const pct = Math.min(100, Math.floor((bytes / totalBytes) * 100));
      parts.push(`${formatBytes(bytes)} / ${formatBytes(totalBytes)} (${pct}%)`);
    } else {
      parts.push(formatBytes(bytes));
    }
    parts.push(`${formatBytes(rate)}/s`);
    if (totalFiles !== undefined) parts.push(`${files}/${totalFiles} files`);
    else if (files > 0) parts.push(`${files} files`);
    // The rate of the first second is noise (a few bytes in a few ms): no ETA yet.
    if (!finished && totalBytes !== undefined && elapsed >= 1 && rate > 0 && bytes < totalBytes)
      parts.push(`ETA ${formatDuration((totalBytes - bytes) / rate)}`);
    else if (finished) parts.push(`in ${formatDuration(elapsed)}`);
    return parts.join('  ');
  };

  const draw = () => {
    lastDraw = now();
    options.out.write(`\r\x1b[2K${line()}`);
  };

  return {
    add(n: number, f = 0) {
      if (finished) return;
      bytes += n;
      files += f;
      if (options.interactive && now() - lastDraw >= interval) draw();
    },
    done() {
      if (finished) return;
      finished = true;
      if (!options.interactive) return;
      draw();
      options.out.write('\n');
    },
  };
}
