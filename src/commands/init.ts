/**
 * `nixdock init`: writes a starter nixdock.config.ts into the current directory, so the first
 * `nixdock build` after `npm install -D nixdock` has something to build. The image's contents
 * follow what the project already has: a flake (`.#default`), a default.nix, or a placeholder.
 */
import type { Command } from 'commander';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { locateConfigFile } from '../config/load.js';
import { NixdockError } from '../errors.js';

export interface InitOptions {
  force?: boolean;
  name?: string;
}

export interface InitResult {
  configFile: string;
  image: string;
  contents: string;
}

export function register(program: Command): void {
  program
    .command('init')
    .description('Write a starter nixdock.config.ts in the current directory')
    .option('--name <image>', 'image name (default: the directory name)')
    .option('--force', 'overwrite an existing nixdock.config.ts')
    .action((opts: InitOptions) => {
      const result = init(process.cwd(), opts);
      process.stderr.write(nextSteps(result));
    });
}

export function init(cwd: string, opts: InitOptions = {}): InitResult {
  const configFile = join(cwd, 'nixdock.config.ts');
  const existing = locateConfigFile({ cwd });
  if (existing && !(opts.force && existing === configFile)) {
    throw new NixdockError('INPUT_INVALID', `This project already has a nixdock config: ${existing}`, {
      location: { file: existing },
      hint: existing === configFile ? 'Edit it, or run `nixdock init --force` to start over.' : 'Edit that file instead; nixdock uses the first config it finds.',
    });
  }
  const image = opts.name ?? imageName(basename(cwd));
  const contents = existsSync(join(cwd, 'flake.nix')) ? '.#default' : './default.nix';
  writeFileSync(configFile, starterConfig(image, contents));
  ignoreOutputs(cwd);
  return { configFile, image, contents };
}

/** A valid image name from a directory name: lowercase, [a-z0-9._-] runs, starting with a letter or digit. */
function imageName(dir: string): string {
  const name = dir.toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '');
  return name || 'app';
}

function starterConfig(image: string, contents: string): string {
  return `import { defineConfig } from 'nixdock';

// nixdock builds OCI/Docker images from Nix store closures. Fields use dockerTools' words.
// \`nixdock build\` writes out/oci; \`nixdock watch\` rebuilds on every save and serves a dashboard.
export default defineConfig({
  images: [
    {
      name: '${image}',
      // What goes in: a .nix file ('./default.nix' or './image.nix#attr'), a flake reference
      // ('.#app', 'nixpkgs#hello'), a store path, or a local directory copied to the root ('./rootfs/').
      contents: ['${contents}'],
      // The container's runtime config (OCI field names): Cmd, Entrypoint, Env, ExposedPorts, …
      config: { Cmd: ['/bin/${image}'] },
      // load: ['podman'],   // load each build into podman (as localhost/${image}:TAG)
    },
  ],
});
`;
}

/** Outputs and the cache are rebuilt on demand: keep them out of git when the project uses it. */
function ignoreOutputs(cwd: string): void {
  const file = join(cwd, '.gitignore');
  if (!existsSync(file)) return;
  const lines = new Set(readFileSync(file, 'utf8').split('\n').map((l) => l.trim()));
  const missing = ['/out/', '/.nixdock/'].filter((entry) => !lines.has(entry) && !lines.has(entry.slice(1)) && !lines.has(entry.slice(1, -1)));
  if (missing.length > 0) appendFileSync(file, `${readFileSync(file, 'utf8').endsWith('\n') ? '' : '\n'}${missing.join('\n')}\n`);
}

function nextSteps(r: InitResult): string {
  return `Wrote ${r.configFile} (image "${r.image}" from ${r.contents}).
Next:
  npx nixdock build          # builds out/oci; prints how to load and run it
  npx nixdock watch --open   # rebuilds on every save, with a live dashboard
`;
}
