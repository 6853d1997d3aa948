/**
 * `nixdock merge IMAGE… -o FILE` (dockerTools' mergeImages): build the project images named, take
 * every tagged image of each `docker-archive:PATH`, and write them as one docker-archive —
 * `podman load -i FILE` loads every tag. Without -o the archive goes to stdout:
 * `nixdock merge a b | podman load`. Archives alone need no project.
 */
import { Command } from 'commander';
import { resolve } from 'node:path';
import { NixdockError } from '../errors.js';
import { EventBus } from '../events.js';
import { mergeImages, type MergeResult, type MergeSource } from '../merge.js';
import { attachConsoleReporter } from '../reporters/console.js';
import { interruptSignal, loadProject, openIndex, projectCacheDir, selectImages } from './shared.js';

const ARCHIVE = 'docker-archive:';

interface MergeOptions {
  config?: string;
  output?: string;
  out?: string;
  json?: boolean;
  quiet?: boolean;
}

export function register(program: Command): void {
  program
    .command('merge')
    .description('Build images and write them all into one docker-archive (dockerTools mergeImages): podman load / docker load get every tag')
    .argument('<image...>', 'project images (built first) and docker-archive:PATH (every tagged image it holds), in the order they go into the archive')
    .option('-o, --output <file>', 'the archive to write (replaced atomically; default: stdout)')
    .option('-c, --config <file>', 'config file (default: search from the current directory)')
    .option('--out <dir>', 'output directory the images are built into (default: outDir of the config)')
    .option('--json', 'print a JSON result on stdout (needs --output)')
    .option('-q, --quiet', 'no progress on stderr')
    .action(async (images: string[], opts: MergeOptions) => {
      await runMerge(images, opts);
    });
}

async function runMerge(args: string[], opts: MergeOptions): Promise<void> {
  const toStdout = opts.output === undefined || opts.output === '-';
  if (toStdout && (opts.json || process.stdout.isTTY)) {
    throw new NixdockError('INPUT_INVALID', opts.json ? '--json needs --output: stdout carries the archive otherwise' : 'Refusing to write an image archive to a terminal', {
      hint: 'nixdock merge a b -o merged.tar   (or pipe it: nixdock merge a b | podman load)',
    });
  }
  const out = toStdout ? { stream: process.stdout } : { path: resolve(opts.output!) };
  const names = [...new Set(args.filter((arg) => !arg.startsWith(ARCHIVE)))];
  // Archives alone need no project: merging dockerTools' own tarballs works anywhere.
  if (names.length === 0) {
    const sources = args.map((arg) => ({ kind: 'archive', path: resolve(arg.slice(ARCHIVE.length)) }) as const);
    report(await mergeImages(sources, { cacheDir: await projectCacheDir(opts.config) }, out), opts);
    return;
  }
  const config = await loadProject(opts);
  const specs = new Map(selectImages(config, names).map((spec) => [spec.name, spec]));
  const sources: MergeSource[] = [...new Set(args)].map((arg) => (arg.startsWith(ARCHIVE) ? { kind: 'archive', path: resolve(arg.slice(ARCHIVE.length)) } : { kind: 'project', spec: specs.get(arg)! }));
  const index = openIndex(config);
  const bus = new EventBus();
  const detach = opts.quiet || opts.json ? () => {} : attachConsoleReporter(bus);
  const { signal, dispose } = interruptSignal();
  try {
    const build = { config, bus, index, signal, reason: 'nixdock merge', ...(opts.out && { outDir: resolve(opts.out) }) };
    report(await mergeImages(sources, { cacheDir: config.cacheDir, signal, build }, out), opts);
  } finally {
    detach();
    dispose();
    index.close();
  }
}

function report(result: MergeResult, opts: MergeOptions): void {
  if (opts.json) process.stdout.write(`${JSON.stringify({ ok: true, path: result.path, images: result.tags })}\n`);
  else if (!opts.quiet && result.path) process.stderr.write(`\nmerged ${result.tags.join(', ')} into ${result.path}\n  load:  podman load -i ${result.path}   (or docker load -i …)\n`);
}
