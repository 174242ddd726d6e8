/**
 * Undo everything a benchmark set up (servers, temp directories), in reverse
 * order, whether it finished, failed or was interrupted.
 */

/** A stack of undo steps. */
export class Cleanups {
  private readonly steps: { what: string; fn: () => Promise<unknown> }[] = [];

  /** Register an undo step; `what` names it in the warning printed if it fails. */
  add(what: string, fn: () => Promise<unknown>): void {
    this.steps.push({ what, fn });
  }

  /**
   * Run `body` with a child stack whose steps run when `body` ends, and also
   * when this stack runs first (an interrupt while `body` is in progress).
   */
  async scope<T>(what: string, body: (cleanups: Cleanups) => Promise<T>): Promise<T> {
    const child = new Cleanups();
    const step = { what, fn: () => child.run() };
    this.steps.push(step);
    try {
      return await body(child);
    } finally {
      await child.run();
      const at = this.steps.indexOf(step);
      if (at >= 0) this.steps.splice(at, 1);
    }
  }

  /**
   * Run and forget every step, last added first. A failing step is reported
   * on stderr and does not stop the others.
   */
  async run(): Promise<void> {
    for (let step = this.steps.pop(); step; step = this.steps.pop()) {
      try {
        await step.fn();
      } catch (err) {
        process.stderr.write(`bench: cleanup of ${step.what} failed: ${(err as Error).message.split('\n')[0]}\n`);
      }
    }
  }
}

/**
 * Run `body` with a fresh {@link Cleanups} and always run it afterwards; for
 * the entry point only (one per process: it owns the signal handlers). On
 * SIGINT or SIGTERM the cleanups run first and the signal is then re-raised,
 * so no server is left running on a removed directory.
 */
export async function withCleanups<T>(body: (cleanups: Cleanups) => Promise<T>): Promise<T> {
  const cleanups = new Cleanups();
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`bench: ${signal}: cleaning up\n`);
    void cleanups.run().finally(() => {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      process.kill(process.pid, signal);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await body(cleanups);
  } finally {
    await cleanups.run();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}
