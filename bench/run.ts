/**
 * `npm run bench`: nixdock against the floor `tar -cf - PATHS | openssl dgst -sha256` (read +
 * tar + hash once) over the same ~1 GB synthetic closure, measured in the same run. Prints each
 * case's time, its ratio to the floor, the target, and peak RSS where it matters.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildSynthetic, DEFAULT_SYNTHETIC } from './synthetic.js';

const CLI = resolve(import.meta.dirname, '../src/cli.ts');
const NODE = [process.execPath, '--import', 'tsx', CLI];

interface Measured {
  seconds: number;
  peakRssMb: number;
  stdout: string;
}

/** Runs a shell pipeline under GNU time; reports wall time and the largest RSS of its processes. */
function measure(shell: string, cwd: string): Measured {
  const started = process.hrtime.bigint();
  const result = spawnSync('bash', ['-o', 'pipefail', '-c', shell], { cwd, encoding: 'utf8', maxBuffer: 1 << 26, env: { ...process.env, NIX_CONFIG: 'substituters =' } });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (result.status !== 0) throw new Error(`bench step failed: ${shell}\n${result.stderr}`);
  const rss = [...result.stderr.matchAll(/^RSS_KB=(\d+)$/gm)].map((m) => Number(m[1]));
  return { seconds, peakRssMb: rss.length ? Math.max(...rss) / 1024 : 0, stdout: result.stdout };
}

const timed = (cmd: string) => `/usr/bin/time -f RSS_KB=%M ${cmd}`;
const nixdock = (args: string) => timed(`${NODE.join(' ')} ${args}`);

function writeProject(dir: string, app: string): void {
  writeFileSync(
    join(dir, 'nixdock.config.json'),
    JSON.stringify({ store: 'nix', formats: ['oci'], images: [{ name: 'synthetic', contents: [app], config: { Cmd: [`${app}/nix-support/deps`] } }] }, null, 2),
  );
}

function row(name: string, m: Measured, floor: number, target?: string, extra = ''): void {
  const ratio = m.seconds / floor;
  console.log(
    `${name.padEnd(34)} ${m.seconds.toFixed(2).padStart(7)} s  ${ratio.toFixed(2).padStart(5)}× floor  ${(target ?? '').padEnd(10)} ${m.peakRssMb ? `peak RSS ${m.peakRssMb.toFixed(0)} MB` : ''} ${extra}`,
  );
}

function main(): void {
  console.log('building the synthetic closure in the Nix store (first run only takes ~1 min)…');
  const app = buildSynthetic(DEFAULT_SYNTHETIC);
  const app2 = buildSynthetic({ ...DEFAULT_SYNTHETIC, salt: 'v2' });
  const paths = execFileSync('nix-store', ['-qR', app], { encoding: 'utf8' }).trim().split('\n');
  const project = mkdtempSync(join(tmpdir(), 'nixdock-bench-project-'));
  try {
    writeFileSync(join(project, 'paths.txt'), paths.join('\n') + '\n');
    // Warm the page cache so every case reads from memory, floor included.
    measure('tar -cf - -T paths.txt 2>/dev/null | openssl dgst -sha256 >/dev/null', project);
    const floor = measure('tar -cf - -T paths.txt 2>/dev/null | openssl dgst -sha256', project);
    console.log(`\nclosure: ${paths.length} paths; floor (tar | openssl sha256): ${floor.seconds.toFixed(2)} s\n`);
    row('floor: tar -cf - | openssl', floor, floor.seconds);

    writeProject(project, app);
    const coldStream = measure(`${nixdock('stream synthetic -q')} | openssl dgst -sha256`, project);
    row('cold stream | openssl', coldStream, floor.seconds, '≤ 2.0×');
    rmSync(join(project, '.nixdock'), { recursive: true, force: true });

    const coldBuild = measure(nixdock('build --json'), project);
    row('cold build → OCI layout', coldBuild, floor.seconds);
    const noChange = measure(nixdock('build --json'), project);
    row('no-change rebuild', noChange, floor.seconds, '≤ 0.2×', layerCounts(noChange.stdout));

    writeProject(project, app2);
    const topChanged = measure(nixdock('build --json'), project);
    row('top-level package changed', topChanged, floor.seconds, '≤ 0.3×', layerCounts(topChanged.stdout));

    const warmStream = measure(`${nixdock('stream synthetic -q')} | openssl dgst -sha256`, project);
    row('warm stream | openssl', warmStream, floor.seconds, '≤ 1.2×');
  } finally {
    rmSync(project, { recursive: true, force: true });
  }
}

function layerCounts(json: string): string {
  const image = JSON.parse(json).images[0];
  return `(${image.layersBuilt} layers built, ${image.layersReused} reused)`;
}

main();
