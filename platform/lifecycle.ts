/**
 * What has been started, to be stopped newest first. Every step runs even when an earlier one
 * fails (a database left open because a server failed to stop is worse than either), and the
 * failures are reported together at the end.
 */
export class Shutdown {
  private readonly steps: { name: string; stop: () => Promise<unknown> | unknown }[] = [];
  private closing: Promise<void> | null = null;

  add(name: string, stop: () => Promise<unknown> | unknown): void {
    this.steps.push({ name, stop });
  }

  /** True once close() was called: readiness probes answer 503 from then on. */
  get stopping(): boolean {
    return this.closing !== null;
  }

  /** Idempotent: a second call waits for the first. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const failures: Error[] = [];
      for (const { name, stop } of this.steps.splice(0).reverse()) {
        try {
          await stop();
        } catch (error) {
          failures.push(new Error(`stopping ${name} failed`, { cause: error }));
        }
      }
      if (failures.length) throw new AggregateError(failures, failures.map((f) => f.message).join('; '));
    })();
    return this.closing;
  }
}
