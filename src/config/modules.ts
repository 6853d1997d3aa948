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
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, extname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { NixdockError } from '../errors.js';

/** The short-lived compiled copies written next to sources: watchers should ignore these. */
export const COMPILED_TEMP_GLOB = '**/.*.nixdock-*.mjs';

const COMPILED_EXTENSIONS = new Set(['.ts', '.mts', '.mjs']);
const CODE_EXTENSIONS = new Set(['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs']);
/** import/export … from 'x', import 'x', import('x'), require('x'). */
const SPECIFIER = /(\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)(['"])([^'"\n]+)\2/g;

/** The entry file of this package: dist/index.js when built, src/index.ts when run from source (tsx). */
function ownEntryUrl(): string {
  const js = new URL('../index.js', import.meta.url);
  return existsSync(fileURLToPath(js)) ? js.href : new URL('../index.ts', import.meta.url).href;
}

/** Imports a config/spec module and returns its default export (awaited). Throws CONFIG_LOAD with the file. */
export async function importDefault(file: string): Promise<unknown> {
  const temporary: string[] = [];
  try {
    const url = COMPILED_EXTENSIONS.has(extname(file)) ? pathToFileURL(compileGraph(file, temporary)).href : pathToFileURL(file).href;
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
function compileGraph(entry: string, temporary: string[]): string {
  const token = randomBytes(4).toString('hex');
  const tempName = (file: string) => join(dirname(file), `.${basename(file)}.nixdock-${token}.mjs`);
  const pending = [entry];
  const seen = new Set(pending);
  while (pending.length > 0) {
    const file = pending.pop()!;
    const js = rewriteSpecifiers(transpile(file), (specifier) => {
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

/** TypeScript → ESM JavaScript, types stripped. Syntax errors become CONFIG_LOAD with line/column. */
function transpile(file: string): string {
  const ts = loadTypescript();
  const source = readFileSync(file, 'utf8');
  const result = ts.transpileModule(source, {
    fileName: file,
    reportDiagnostics: true,
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, sourceMap: false },
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
