/** Shared by the benchmark sections: run a shell pipeline, time it, and read its peak RSS. */
import { spawnSync } from 'node:child_process';
import { rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The compiled CLI, as users run it (`npm run bench` compiles first). */
export const CLI = resolve(import.meta.dirname, '../dist/bin/nixdock.js');

export interface Measured {
  seconds: number;
  peakRssMb: number;
  /** User + system CPU seconds of the `timed` processes (a busy machine stretches wall time, far less this). */
  cpuSeconds: number;
  stdout: string;
}

/** What every section gets: the synthetic closure and the floor measured in this run. */
export interface BenchContext {
  /** A temp project dir (nixdock.config.ts and ./result written by writeProject). */
  project: string;
  /** Top-level store path of the synthetic closure, and of the same closure with only the app changed. */
  app: string;
  app2: string;
  paths: string[];
  floorSeconds: number;
}

/** Runs a shell pipeline; reports wall time and the largest RSS any `timed` process of it had. */
export function measure(shell: string, cwd: string): Measured {
  const started = process.hrtime.bigint();
  const result = spawnSync('bash', ['-o', 'pipefail', '-c', shell], { cwd, encoding: 'utf8', maxBuffer: 1 << 26, env: { ...process.env, NIX_CONFIG: 'substituters =\nbuild-users-group =\nsandbox = false' } });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (result.status !== 0) throw new Error(`bench step failed: ${shell}\n${result.stderr}`);
  const rss = [...result.stderr.matchAll(/^RSS_KB=(\d+) CPU=([\d.]+) ([\d.]+)$/gm)];
  const cpuSeconds = rss.reduce((sum, m) => sum + Number(m[2]) + Number(m[3]), 0);
  return { seconds, peakRssMb: rss.length ? Math.max(...rss.map((m) => Number(m[1]))) / 1024 : 0, cpuSeconds, stdout: result.stdout };
}

export const timed = (cmd: string) => `/usr/bin/time -f 'RSS_KB=%M CPU=%U %S' ${cmd}`;
export const nixdock = (args: string) => timed(`${process.execPath} ${CLI} ${args}`);

/**
 * The project as a Nix user has it (layers in the spec's `compression`, default none): a nixdock.config.ts naming `./result`, the symlink
 * `nix build -o result` leaves, pointed at `app`. The config is rewritten each time (the same text:
 * the transpile cache still hits), which is the save the watch daemon reacts to.
 */
export function writeProject(dir: string, app: string, compression?: 'none' | 'gzip' | 'zstd'): void {
  const result = join(dir, 'result');
  rmSync(result, { force: true });
  symlinkSync(app, result);
  const config = compression ? CONFIG.replace("name: 'synthetic',", `name: 'synthetic', compression: '${compression}',`) : CONFIG;
  writeFileSync(join(dir, 'nixdock.config.ts'), config);
}

const CONFIG = `import { realpathSync } from 'node:fs';
import { defineConfig } from 'nixdock';

const app = realpathSync(new URL('./result', import.meta.url));

export default defineConfig({
  store: 'nix',
  formats: ['oci'],
  images: [{ name: 'synthetic', contents: [app], config: { Cmd: [\`\${app}/nix-support/deps\`] } }],
});
`;

/** One result line: time, ratio to the floor, the target, and anything else worth printing. */
export function row(name: string, seconds: number, floorSeconds: number, target = '', extra = ''): void {
  console.log(`${name.padEnd(34)} ${seconds.toFixed(2).padStart(7)} s  ${(seconds / floorSeconds).toFixed(2).padStart(5)}× floor  ${target.padEnd(10)} ${extra}`);
}

export const rss = (m: Measured) => (m.peakRssMb ? `peak RSS ${m.peakRssMb.toFixed(0)} MB` : '');
