/** `nixdock gc`: remove old images from the output layouts, then the blobs and index rows that the last N builds of each image no longer use. */
import { Command } from 'commander';
import { NixdockError } from '../errors.js';
import { collectAllGarbage, type GcReport } from '../cache/gc.js';
import type { JsonOk } from './json.js';
import { loadProject, openIndex } from './shared.js';
import { formatBytes } from '../reporters/console.js';

export interface GcCommandOptions {
  config?: string;
  keep?: string;
  dryRun?: boolean;
  json?: boolean;
}

export type GcJson = JsonOk<GcReport>;

export function register(program: Command): void {
  program
    .command('gc')
    .description('Remove old images from the output OCI layouts, blobs and index rows not used by the last N builds of each image, and cached base images none of those builds use that were not used for gc.cacheDays days')
    .option('-c, --config <file>', 'config file (default: search from the current directory)')
    .option('-k, --keep <n>', 'builds to keep per image (default: gc.keepBuilds of the config, 5)')
    .option('-n, --dry-run', 'show what would be removed, remove nothing')
    .option('--json', 'print what was removed as JSON on stdout')
    .action(async (opts: GcCommandOptions) => {
      await runGc(opts);
    });
}

export async function runGc(opts: GcCommandOptions): Promise<GcReport> {
  const keepFromFlag = opts.keep === undefined ? undefined : parseKeep(opts.keep);
  const config = await loadProject(opts);
  const index = openIndex(config);
  let result: GcReport;
  try {
    result = await collectAllGarbage(index, { keepBuilds: keepFromFlag ?? config.gc.keepBuilds, dryRun: opts.dryRun === true, cacheDays: config.gc.cacheDays });
  } finally {
    index.close();
  }
  if (opts.json) process.stdout.write(JSON.stringify({ ok: true, ...result } satisfies GcJson, null, 2) + '\n');
  else process.stderr.write(summary(result) + '\n');
  return result;
}

function parseKeep(text: string): number {
  const n = Number(text);
  if (Number.isInteger(n) && n >= 0) return n;
  throw new NixdockError('INPUT_INVALID', `--keep must be a whole number of builds`, {
    location: { field: '--keep' },
    found: JSON.stringify(text),
    expected: 'an integer ≥ 0 (0 keeps only each image\'s latest successful build)',
    hint: 'For example `nixdock gc --keep 3`.',
  });
}

function summary(r: GcReport): string {
  const verb = r.dryRun ? 'Would remove' : 'Removed';
  const files = r.blobs.reduce((n, blob) => n + blob.dirs.length, 0);
  const images = r.entries.length ? `${r.entries.length} old image${r.entries.length === 1 ? '' : 's'} from OCI layouts, ` : '';
  return `${verb} ${images}${files} blob file${files === 1 ? '' : 's'} (${formatBytes(r.bytes)}), ` +
    `${r.builds.length} build record${r.builds.length === 1 ? '' : 's'} and ${r.layers} layer record${r.layers === 1 ? '' : 's'}` +
    `${r.caches ? `, and ${r.caches.files.length} cached base-image file${r.caches.files.length === 1 ? '' : 's'} (${formatBytes(r.caches.bytes)})` : ''}` +
    ` (keeping the last ${r.keepBuilds} build${r.keepBuilds === 1 ? '' : 's'} of each image).`;
}

