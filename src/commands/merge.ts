/**
 * `nixdock merge IMAGE… -o FILE` (dockerTools' mergeImages): build the project images named and
 * write them as one docker-archive — `podman load -i FILE` loads every tag. Without -o the
 * archive goes to stdout: `nixdock merge a b | podman load`.
 */
import { Command } from 'commander';
import { resolve } from 'node:path';
import { NixdockError } from '../errors.js';
import { EventBus } from '../events.js';
import { mergeImages } from '../merge.js';
import { attachConsoleReporter } from '../reporters/console.js';
import { interruptSignal, loadProject, openIndex, selectImages } from './shared.js';

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
    .argument('<image...>', 'project images, in the order they go into the archive')
    .option('-o, --output <file>', 'the archive to write (replaced atomically; default: stdout)')
    .option('-c, --config <file>', 'config file (default: search from the current directory)')
    .option('--out <dir>', 'output directory the images are built into (default: outDir of the config)')
    .option('--json', 'print a JSON result on stdout (needs --output)')
    .option('-q, --quiet', 'no progress on stderr')
    .action(async (images: string[], opts: MergeOptions) => {
      await runMerge(images, opts);
    });
}

async function runMerge(names: string[], opts: MergeOptions): Promise<void> {
  const toStdout = opts.output === undefined || opts.output === '-';
  if (toStdout && (opts.json || process.stdout.isTTY)) {
    throw new NixdockError('INPUT_INVALID', opts.json ? '--json needs --output: stdout carries the archive otherwise' : 'Refusing to write an image archive to a terminal', {
      hint: 'nixdock merge a b -o merged.tar   (or pipe it: nixdock merge a b | podman load)',
    });
  }
  const config = await loadProject(opts);
  const specs = selectImages(config, [...new Set(names)]);
  const index = openIndex(config);
  const bus = new EventBus();
  const detach = opts.quiet || opts.json ? () => {} : attachConsoleReporter(bus);
  const { signal, dispose } = interruptSignal();
  try {
    const ctx = { config, bus, index, signal, reason: 'nixdock merge', ...(opts.out && { outDir: resolve(opts.out) }) };
    const result = await mergeImages(specs, ctx, toStdout ? { stream: process.stdout } : { path: resolve(opts.output!) });
    const tags = result.images.map((image) => `${image.image}:${image.tag}`);
    if (opts.json) process.stdout.write(`${JSON.stringify({ ok: true, path: result.path, images: tags })}\n`);
    else if (!opts.quiet && result.path) process.stderr.write(`\nmerged ${tags.join(', ')} into ${result.path}\n  load:  podman load -i ${result.path}   (or docker load -i …)\n`);
  } finally {
    detach();
    dispose();
    index.close();
  }
}
