import { spawn } from 'node:child_process';
import { constants } from 'node:os';

/** The outcome of a finished child process; a non-zero exit is data, not an exception. */
export interface ExecResult {
  /** exit status, or 128 + signal number when the child was killed by a signal (as a shell reports it) */
  code: number;
  /** the signal that killed the child, if any */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** the child's complete environment (nothing is inherited implicitly) */
  env?: Readonly<Record<string, string | undefined>>;
  cwd?: string;
  /** written to the child's stdin, which is then closed; stdin is empty otherwise */
  input?: string | Buffer;
  /** kill the child with SIGKILL after this long; default 120 s */
  timeoutMs?: number;
}

/**
 * Run `file` with `args` (no shell) and collect its output. Resolves with the
 * exit code for any exit status; rejects only when the program cannot be
 * started at all (e.g. ENOENT), so a test can assert on failing commands.
 */
export function exec(file: string, args: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      env: options.env as NodeJS.ProcessEnv | undefined,
      cwd: options.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    // A child that exits without reading its input closes the pipe: EPIPE is expected then.
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');

    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${file}: ${err.message}`, { cause: err }));
    });
    // 'close' (not 'exit') so that all output has been read.
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({
        code: status ?? 128 + (signal ? constants.signals[signal] : 0),
        signal,
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
      });
    });
  });
}

/**
 * Like {@link exec}, but rejects when the exit code is not 0, with the command
 * line and its stderr (or stdout) in the message: for set-up steps whose
 * failure means the test cannot go on.
 */
export async function execOk(file: string, args: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
  const result = await exec(file, args, options);
  if (result.code !== 0) {
    const output = (result.stderr.trim() || result.stdout.trim()).split('\n').slice(-20).join('\n');
    throw new Error(`${[file, ...args].join(' ')} exited with code ${result.code}\n${output}`);
  }
  return result;
}
