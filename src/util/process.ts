/** Child processes: stopping a whole process group, and telling whether a pid is still alive. */

/** SIGTERM to the process group of `pid`, so builders and helpers a tool started stop too. */
export function killProcessGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGTERM');
  } catch {
    // The group is already gone.
  }
}

/** Whether a process with this pid is alive (signal 0 checks without sending anything). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
