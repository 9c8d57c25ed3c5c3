/**
 * @module A job many events ask for: requests within `delayMs` make one run, a request during a run makes one more
 * pass after it, and a direct call while one runs joins it. Auto-assign and the runners' fills are such jobs.
 */

export interface Coalesced {
  /** Asks for a run soon; many requests make one run. */
  request(): void;
  /** Runs now, or joins the running one (which then makes one more pass); what its passes returned, summed. */
  run(): Promise<number>;
}

export function coalesce(
  pass: () => Promise<number>,
  options: {
    delayMs: number;
    /** A pass that throws is reported here; the run goes on. */
    onError: (err: Error) => void;
    /** No more passes once this holds (the owner is stopping). */
    halted?: () => boolean;
    /** Told of every run's promise (the owner waits for them when it stops). */
    track?: <T>(run: Promise<T>) => Promise<T>;
  },
): Coalesced {
  let running: Promise<number> | null = null;
  let again = false;
  let scheduled = false;

  async function passes(): Promise<number> {
    let total = 0;
    do {
      again = false;
      try {
        total += await pass();
      } catch (err) {
        options.onError(err as Error);
      }
    } while (again && !options.halted?.());
    return total;
  }

  const job: Coalesced = {
    request() {
      if (running) again = true;
      else if (!scheduled) {
        scheduled = true;
        setTimeout(() => {
          scheduled = false;
          void job.run();
        }, options.delayMs).unref?.();
      }
    },
    async run() {
      if (running) {
        again = true;
        return running;
      }
      running = options.track ? options.track(passes()) : passes();
      try {
        return await running;
      } finally {
        running = null;
      }
    },
  };
  return job;
}
