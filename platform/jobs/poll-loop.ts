/**
 * The loop of a background worker that takes its work from the database: `work` runs every
 * `everyMs`, and at once when woken (after a commit that queued something, a slot freed up),
 * never twice at a time. A wake during a run runs it again right after, so no wake-up is lost.
 */
export class PollLoop {
  private timer: NodeJS.Timeout | null = null;
  private current: Promise<void> | null = null;
  private wokenDuringRun = false;
  private stopped = true;

  constructor(
    private readonly work: () => Promise<void>,
    private readonly options: {
      everyMs: number;
      /** What a run that threw is told to (the loop goes on: the next poll tries again). */
      onError(error: unknown): void;
    },
  ) {}

  /** Whether the loop runs: false from stop() on, so work under way can see it should end. */
  get running(): boolean {
    return !this.stopped;
  }

  start(): void {
    this.stopped = false;
    this.timer = setInterval(() => this.wake(), this.options.everyMs);
    this.timer.unref();
    this.wake();
  }

  /** Runs the work now, or right after the run under way. */
  wake(): void {
    if (this.stopped) return;
    if (this.current) {
      this.wokenDuringRun = true;
      return;
    }
    this.current = this.work()
      .catch((error: unknown) => this.options.onError(error))
      .finally(() => {
        this.current = null;
        if (this.wokenDuringRun) {
          this.wokenDuringRun = false;
          this.wake();
        }
      });
  }

  /** No more runs; resolves when the run under way (if any) has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.current;
  }
}
