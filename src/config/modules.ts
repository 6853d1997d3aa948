/**
 * Loading config and spec files written as code (TS/JS), and finding the local files they import
 * (the daemon watches those too).
 *
 * Why our own loader: a project's `nixdock.config.ts` does `import { defineConfig } from 'nixdock'`,
 * but 'nixdock' is often not resolvable from the project (run through npx, a global install, or
 * this repository itself), and Node 20 cannot import TypeScript. So each .ts/.mts/.mjs file of the
 * config's local import graph is transpiled with `typescript` (types stripped, nothing checked)
 * into a hidden temporary `.mjs` next to its source — so relative imports of .js/.json files still
 * resolve — with `from 'nixdock'` rewritten to the file URL of this package's own entry and
 * relative imports of compiled files rewritten to their temporary names. The temporary files are
 * deleted right after the import. Unique names also defeat the ESM cache, so a reload sees edits.
 *
 * Loading typescript costs ~0.75 s, most of a no-change rebuild. So the type-stripped output is
 * kept in the user cache (the project's cacheDir is not known before its config is loaded), keyed
 * by everything it depends on: source, typescript version, compiler options. An unchanged config
 * then never loads typescript; an edited one misses the cache and is seen at once.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, dirname, extname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { digestHex, sha256 } from '../digest.js';
import { NixdockError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic.js';
import { userCacheDir } from '../util/cache-dir.js';

/** The short-lived compiled copies written next to sources: watchers should ignore these. */
export const COMPILED_TEMP_GLOB = '**/.*.nixdock-*.mjs';

const COMPILED_EXTENSIONS = new Set(['.ts', '.mts', '.mjs']);
const CODE_EXTENSIONS = new Set(['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs']);
/** import/export … from 'x', import 'x', import('x'), require('x'). */
const SPECIFIER = /(\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)(['"])([^'"\n]+)\2/g;
/** In tsconfig (JSON) form, so that the cache key can name them without loading typescript. */
const COMPILER_OPTIONS = { module: 'esnext', target: 'es2022', sourceMap: false };
/** Bump when transpile() changes in a way its cache key does not capture. */
const TRANSPILE_CACHE_VERSION = 1;
/** Cache entries not used for this long are deleted (each hit refreshes the entry's mtime). */
const UNUSED_ENTRY_MAX_AGE_MS = 30 * 24 * 60 * 60 * 1000;

/** The entry file of this package: dist/index.js when built, src/index.ts when run from source (tsx). */
function ownEntryUrl(): string {
  const js = new URL('../index.js', import.meta.url);
  return existsSync(fileURLToPath(js)) ? js.href : new URL('../index.ts', import.meta.url).href;
}

/** Imports a config/spec module and returns its default export (awaited). Throws CONFIG_LOAD with the file. */
export async function importDefault(file: string): Promise<unknown> {
  const temporary: string[] = [];
  try {
    const url = COMPILED_EXTENSIONS.has(extname(file)) ? pathToFileURL(await compileGraph(file, temporary)).href : pathToFileURL(file).href;
    const module = (await import(url)) as { default?: unknown };
    return await module.default;
  } catch (err) {
    if (err instanceof NixdockError) throw err;
    throw loadError(file, err);
  } finally {
    for (const path of temporary) rmSync(path, { force: true });
  }
}

function loadError(file: string, err: unknown): NixdockError {
  const message = err instanceof Error ? err.message : String(err);
  const unresolved = /Cannot find (?:package|module) '([^']+)'/.exec(message);
  return new NixdockError('CONFIG_LOAD', `${basename(file)} failed to load: ${message}`, {
    location: { file },
    found: err instanceof Error ? `${err.name}: ${message}` : message,
    hint: unresolved
      ? `Install \`${unresolved[1]}\` in the project, or fix the import.`
      : 'Fix the error above; running the file with `node --import tsx` shows the full stack.',
    cause: err,
  });
}

/** Compiles `file` and the compiled files it imports locally; returns the temporary entry path. */
async function compileGraph(entry: string, temporary: string[]): Promise<string> {
  const token = randomBytes(4).toString('hex');
  const tempName = (file: string) => join(dirname(file), `.${basename(file)}.nixdock-${token}.mjs`);
  const pending = [entry];
  const seen = new Set(pending);
  while (pending.length > 0) {
    const file = pending.pop()!;
    const js = rewriteSpecifiers(await transpileCached(file), (specifier) => {
      if (specifier === 'nixdock') return ownEntryUrl();
      const target = resolveLocalImport(file, specifier);
      if (!target || !COMPILED_EXTENSIONS.has(extname(target))) return specifier;
      if (!seen.has(target)) {
        seen.add(target);
        pending.push(target);
      }
      return `./${relative(dirname(file), tempName(target))}`;
    });
    const out = tempName(file);
    temporary.push(out);
    writeFileSync(out, js);
  }
  return tempName(entry);
}

/** transpile(), from the cache when this source was transpiled before (typescript then never loads). */
async function transpileCached(file: string): Promise<string> {
  const source = readFileSync(file, 'utf8');
  const entry = transpileCacheEntry(file, source);
  const cached = entry === undefined ? undefined : readCacheEntry(entry);
  if (cached !== undefined) return cached;
  const js = transpile(file, source);
  if (entry !== undefined) await writeCacheEntry(entry, js);
  return js;
}

/** The cache file for this transpile; undefined when typescript's version is unknown (not installed). */
function transpileCacheEntry(file: string, source: string): string | undefined {
  const version = typescriptVersion();
  if (version === undefined) return undefined;
  // The extension is part of the input: it tells typescript how to parse (.ts vs .mts vs .mjs).
  const key = digestHex(sha256(JSON.stringify([TRANSPILE_CACHE_VERSION, version, COMPILER_OPTIONS, extname(file), source])));
  return join(userCacheDir(), 'transpiled', `${key}.mjs`);
}

/** The version of the typescript that is (or would be) loaded, read without loading it. */
function typescriptVersion(): string | undefined {
  if (typescriptModule) return typescriptModule.version;
  try {
    const manifest = createRequire(import.meta.url).resolve('typescript/package.json');
    return (JSON.parse(readFileSync(manifest, 'utf8')) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

/**
 * An entry is `// <sha256 of the code>` + newline + the code. The key covers the input only, so
 * the checksum is what catches a truncated or overwritten entry — which could still import fine
 * and yield a wrong config. Anything unreadable or not matching is a miss.
 */
function readCacheEntry(path: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const newline = text.indexOf('\n');
  const code = text.slice(newline + 1);
  if (newline < 0 || text.slice(0, newline) !== checksumLine(code)) return undefined;
  markUsed(path);
  return code;
}

function checksumLine(code: string): string {
  return `// ${sha256(code)}`;
}

/** Refreshes the mtime that pruning goes by (atime is unreliable: noatime/relatime mounts). */
function markUsed(path: string): void {
  const now = new Date();
  try {
    utimesSync(path, now, now);
  } catch {
    // A read-only cache still serves hits; the entry may just be pruned earlier.
  }
}

/** Best-effort: the cache only saves time, so an unwritable or full cache dir never fails a load. */
async function writeCacheEntry(path: string, code: string): Promise<void> {
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFileAtomic(path, `${checksumLine(code)}\n${code}`);
    await pruneUnused(dirname(path));
  } catch {
    // Next load transpiles again.
  }
}

/**
 * Deletes entries (and temp files left by killed writers) unused for 30 days. Runs only after a
 * miss, which has just paid for loading typescript, so a directory scan is noise.
 */
async function pruneUnused(dir: string): Promise<void> {
  const cutoff = Date.now() - UNUSED_ENTRY_MAX_AGE_MS;
  const prune = async (name: string) => {
    const path = join(dir, name);
    if ((await stat(path)).mtimeMs < cutoff) await rm(path, { force: true });
  };
  // One entry vanishing under a concurrent prune must not stop the others.
  await Promise.all((await readdir(dir)).map((name) => prune(name).catch(() => undefined)));
}

/** TypeScript → ESM JavaScript, types stripped. Syntax errors become CONFIG_LOAD with line/column. */
function transpile(file: string, source: string): string {
  const ts = loadTypescript();
  const result = ts.transpileModule(source, {
    fileName: file,
    reportDiagnostics: true,
    compilerOptions: ts.convertCompilerOptionsFromJson(COMPILER_OPTIONS, dirname(file)).options,
  });
  const diagnostic = result.diagnostics?.find((d) => d.category === ts.DiagnosticCategory.Error);
  if (diagnostic) {
    const at = diagnostic.file && diagnostic.start !== undefined ? diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start) : undefined;
    const text = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n');
    throw new NixdockError('CONFIG_LOAD', `${basename(file)} has a syntax error: ${text}`, {
      location: { file, ...(at && { line: at.line + 1, column: at.character + 1 }) },
      hint: 'Fix the syntax error; your editor shows it at the same place.',
    });
  }
  return result.outputText;
}

let typescriptModule: typeof import('typescript') | undefined;
/** typescript is big: loaded only when a code config is, and synchronously (it is CommonJS). */
function loadTypescript(): typeof import('typescript') {
  typescriptModule ??= createRequire(import.meta.url)('typescript') as typeof import('typescript');
  return typescriptModule;
}

function rewriteSpecifiers(code: string, map: (specifier: string) => string): string {
  return code.replace(SPECIFIER, (_all, prefix: string, quote: string, specifier: string) => `${prefix}${quote}${map(specifier)}${quote}`);
}

/** The file a relative specifier names: as written, or with the extensions Node/TS would try. */
export function resolveLocalImport(fromFile: string, specifier: string): string | undefined {
  if (!specifier.startsWith('./') && !specifier.startsWith('../')) return undefined;
  const base = resolve(dirname(fromFile), specifier);
  const swapped = base.replace(/\.js$/, '.ts').replace(/\.mjs$/, '.mts').replace(/\.cjs$/, '.cts');
  const candidates = [base, swapped, `${base}.ts`, `${base}.mts`, `${base}.js`, `${base}.mjs`, `${base}.json`, join(base, 'index.ts'), join(base, 'index.js')];
  return candidates.find((c) => statSync(c, { throwIfNoEntry: false })?.isFile());
}

/** Every local file `file` imports, directly or through other local code files (not `file` itself). */
export function localImports(file: string): string[] {
  const found = new Set<string>();
  const pending = [file];
  while (pending.length > 0) {
    const current = pending.pop()!;
    if (!CODE_EXTENSIONS.has(extname(current))) continue;
    const source = readFileSync(current, 'utf8');
    for (const match of source.matchAll(SPECIFIER)) {
      const target = resolveLocalImport(current, match[3]!);
      if (target && target !== file && !found.has(target)) {
        found.add(target);
        pending.push(target);
      }
    }
  }
  return [...found];
}
