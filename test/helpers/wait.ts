/** Polling for what a test waits on: a file, a message, a process state. */

/** Generous upper bounds for waits: they make a hung test fail, they measure nothing. */
export const WAIT_MS = 60_000;

/** Polls `check` until it returns something (or throws); fails after WAIT_MS. */
export async function until<T>(check: () => T | undefined | false, what = 'condition'): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
