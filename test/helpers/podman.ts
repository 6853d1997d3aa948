/** podman with a private store under a test's temp dir, and the flags that make it run on this machine. */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** The global podman flags for a private store under `dir` (for callers that spawn podman themselves, e.g. to pipe into it). */
export function podmanStoreFlags(dir: string): string[] {
  return ['--root', join(dir, 'root'), '--runroot', join(dir, 'runroot'), '--tmpdir', join(dir, 'tmp'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'file'];
}

/** Private podman store under `dir` with this machine's working runtime flags. */
export function podman(dir: string, args: string[]): string {
  return execFileSync('podman', [...podmanStoreFlags(dir), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export const RUN_FLAGS = ['--runtime', '/usr/sbin/runc', 'run', '--rm', '--pull', 'never', '--network=none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];
