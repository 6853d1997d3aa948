/**
 * Bundles the compiled CLI (dist/cli.js and everything it imports) into dist/bin/, one chunk per
 * command (esbuild code splitting), which `nixdock` runs.
 *
 * Why: start-up is part of every no-change rebuild, and Node 20 has no module compile cache.
 * Loading ~70 modules one by one (resolve, read, compile each) cost ~0.1 s of a ~0.5 s rebuild;
 * a few chunks cost a fraction of that.
 *
 * The modules keep working where they locate files next to themselves (the tar worker, the
 * dashboard, the package entry a config imports): each `import.meta.url` is rewritten to the
 * URL the module has in dist/, relative to the chunk it ends up in. dist/ itself stays as tsc
 * wrote it: the worker thread and `import … from 'nixdock'` still load from there.
 */
import { chmod, readFile } from 'node:fs/promises';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

/** The tsc output to bundle: ../dist, or the directory given (a test builds one elsewhere). */
const dist = resolve(process.argv[2] ?? resolve(dirname(fileURLToPath(import.meta.url)), '..', 'dist'));
const outdir = resolve(dist, 'bin');

/** `import.meta.url` of a dist/ module, as seen from a chunk in outdir. */
const keepModuleUrls = {
  name: 'keep-module-urls',
  setup(build) {
    build.onLoad({ filter: /\/dist\/.*\.js$/ }, async ({ path }) => {
      const source = await readFile(path, 'utf8');
      const fromChunk = JSON.stringify(relative(outdir, path));
      return { contents: source.replaceAll('import.meta.url', `new URL(${fromChunk}, import.meta.url).href`), loader: 'js' };
    });
  },
};

/**
 * zod re-exports its ~60 locales as `z.locales` (340 KB of the 1.2 MB of chunks `nixdock build`
 * loaded at start, compiled on every run); nixdock's messages are its own and zod's English
 * default comes from locales/en.js, which zod imports itself. So the CLI bundle keeps only `en`.
 */
const englishOnlyZod = {
  name: 'zod-english-only',
  setup(build) {
    build.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, ({ path }) => ({
      contents: 'export { default as en } from "./en.js";',
      loader: 'js',
      resolveDir: dirname(path),
    }));
  },
};

await build({
  entryPoints: { nixdock: resolve(dist, 'cli.js') },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  minifyWhitespace: true,
  minifySyntax: true,
  // Native, loaded lazily, or optional: resolved from node_modules at run time.
  external: ['better-sqlite3', 'typescript', 'fsevents', 'bufferutil', 'utf-8-validate'],
  // CommonJS dependencies bundled into ESM call require() for Node built-ins.
  banner: { js: "import { createRequire as __nixdockRequire } from 'node:module'; const require = __nixdockRequire(import.meta.url);" },
  plugins: [keepModuleUrls, englishOnlyZod],
  logLevel: 'warning',
});
await chmod(resolve(outdir, 'nixdock.js'), 0o755);
