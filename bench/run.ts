/**
 * `npm run bench`: nixdock against the floor `tar -cf - PATHS | openssl dgst -sha256` (read +
 * tar + hash once) over the same ~1 GB synthetic closure, measured in the same run. Each section
 * prints its cases' times, ratios to the floor and targets.
 *
 * `npm run bench -- push watch` runs only the sections named (pipeline, push, watch, run, layering);
 * the floor is measured every time, since every row is read against it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { measure, row, type BenchContext } from './measure.js';
import { layeringBench } from './sections/layering.js';
import { pipelineBench } from './sections/pipeline.js';
import { pushBench } from './sections/push.js';
import { runOnSaveBench } from './sections/run.js';
import { watchBench } from './sections/watch.js';
import { buildSynthetic, DEFAULT_SYNTHETIC } from './synthetic.js';

const SECTIONS = { pipeline: pipelineBench, push: pushBench, watch: watchBench, run: () => runOnSaveBench(), layering: layeringBench } as const;

/** The sections named on the command line (all when none are), checked before a minute of set-up. */
function chosenSections(args: string[]): Array<keyof typeof SECTIONS> {
  const names = Object.keys(SECTIONS) as Array<keyof typeof SECTIONS>;
  const unknown = args.filter((a) => !(names as string[]).includes(a));
  if (unknown.length > 0) throw new Error(`unknown bench section ${unknown.join(', ')}; sections: ${names.join(', ')}`);
  return args.length > 0 ? names.filter((n) => args.includes(n)) : names;
}

async function main(): Promise<void> {
  const sections = chosenSections(process.argv.slice(2));
  console.log('building the synthetic closure in the Nix store (the first run takes about a minute)…');
  const app = buildSynthetic(DEFAULT_SYNTHETIC);
  const app2 = buildSynthetic({ ...DEFAULT_SYNTHETIC, salt: 'v2' });
  const paths = execFileSync('nix-store', ['-qR', app], { encoding: 'utf8' }).trim().split('\n');
  const project = mkdtempSync(join(tmpdir(), 'nixdock-bench-project-'));
  // A user cache of the bench's own (the transpiled config lives there), inherited by every run.
  process.env.XDG_CACHE_HOME = join(project, '.user-cache');
  try {
    writeFileSync(join(project, 'paths.txt'), paths.join('\n') + '\n');
    measure('find $(cat paths.txt) -type f -print0 > files.txt', project);
    // Warm the page cache so every case reads from memory, the floor included.
    measure('tar -cf - -T paths.txt 2>/dev/null | openssl dgst -sha256 >/dev/null', project);
    const floor = measure('tar -cf - -T paths.txt 2>/dev/null | openssl dgst -sha256', project);
    // The floor's parts, to see what bounds this machine. Reading: not `tar > /dev/null`, which
    // GNU tar notices and then skips reading the files. Hashing: the same bytes, read by cat.
    const read = measure('tar -cf - -T paths.txt 2>/dev/null | cat > /dev/null', project);
    const hash = measure('xargs -0 cat < files.txt | openssl dgst -sha256', project);
    const bound = read.seconds > hash.seconds ? 'read-bound (reading the files takes longer than hashing them)' : 'CPU-bound (hashing takes longer than reading)';
    console.log(`\nclosure: ${paths.length} paths; floor (tar | openssl sha256): ${floor.seconds.toFixed(2)} s; this machine is ${bound}\n`);
    row('floor: tar -cf - | openssl', floor.seconds, floor.seconds);
    row('  part: tar -cf - | cat >/dev/null', read.seconds, floor.seconds);
    row('  part: cat FILES | openssl', hash.seconds, floor.seconds);
    const ctx: BenchContext = { project, app, app2, paths, floorSeconds: floor.seconds };
    for (const section of sections) await SECTIONS[section](ctx);
  } finally {
    rmSync(project, { recursive: true, force: true });
  }
}

await main();
