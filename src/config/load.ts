/**
 * Finding, loading and validating the configuration and spec files → ResolvedConfig.
 * Like Vite's loader it also returns every file the config depended on, so the daemon knows
 * what to watch and can reload one spec file on its own (loadSpecFile).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, relative, resolve, sep } from 'node:path';
import { cosmiconfig, type Loader } from 'cosmiconfig';
import picomatch from 'picomatch';
import { z } from 'zod';
import { NixdockError } from '../errors.js';
import { combineErrors, fieldError, validate, type ConfigErrorCode } from './errors.js';
import { importDefault, localImports } from './modules.js';
import { DEFAULT_STORE_DIR, normalizeImage, normalizeTopLevel } from './normalize.js';
import { configSchema, imageSpecSchema, specFileImagesSchema, type ImageSpecInput, type NixdockConfigInput } from './schema.js';
import type { ImageSpec, ResolvedConfig } from './types.js';

export const CONFIG_SEARCH_PLACES = [
  'package.json',
  '.nixdockrc',
  '.nixdockrc.json',
  'nixdock.config.ts',
  'nixdock.config.mts',
  'nixdock.config.js',
  'nixdock.config.mjs',
  'nixdock.config.cjs',
  'nixdock.config.json',
];

const MINIMAL_CONFIG = `create nixdock.config.ts:
    import { defineConfig } from 'nixdock';
    export default defineConfig({
      images: [{ name: 'hello', contents: ['./default.nix#hello'], config: { Cmd: ['/bin/hello'] } }],
    });`;

export interface LoadConfigOptions {
  /** Directory to search from (upwards to the nearest package.json). */
  cwd: string;
  /** Explicit config file (--config); no search then. */
  configFile?: string;
}

export async function loadConfig(opts: LoadConfigOptions): Promise<ResolvedConfig> {
  const found = await findConfig(opts);
  const configFile = found.filepath;
  const root = resolve(configFile, '..');
  // A package.json config lives under its `nixdock` key: field paths say so.
  const prefix = basename(configFile) === 'package.json' ? 'nixdock' : '';
  const input = validate<NixdockConfigInput>({ code: 'CONFIG_INVALID', file: configFile, field: prefix, input: found.config ?? {}, schema: configSchema });
  const topLevel = normalizeTopLevel(input, root);
  const storeDir = topLevel.store.storeDir;

  const images = everyImage(input.images ?? [], (image, i) =>
    normalizeImage(image, { code: 'CONFIG_INVALID', file: configFile, field: `${prefix ? `${prefix}.` : ''}images[${i}]`, root, storeDir }),
  );
  const specFiles = findSpecFiles(root, topLevel.specGlobs, configFile, prefix);
  const commands = { allowed: !Array.isArray(input.specs) && input.specs?.allowCommands === true, configFile, field: `${prefix ? `${prefix}.` : ''}specs.allowCommands` };
  for (const file of specFiles) images.push(...(await loadSpecFile(file, root, { storeDir, commands })));
  assertUniqueNames(images, configFile);

  const dependencies = new Set([configFile, ...localImports(configFile)]);
  for (const file of specFiles) for (const dep of [file, ...localImports(file)]) dependencies.add(dep);
  return { configFile, ...topLevel, images, dependencies: [...dependencies] };
}

async function findConfig(opts: LoadConfigOptions): Promise<{ filepath: string; config: unknown }> {
  const loadCode: Loader = (file) => importDefault(file);
  const loadJson: Loader = (file, content) => parseJson(file, content, 'CONFIG_LOAD');
  const explorer = cosmiconfig('nixdock', {
    searchPlaces: CONFIG_SEARCH_PLACES,
    searchStrategy: 'project',
    cache: false,
    loaders: { '.ts': loadCode, '.mts': loadCode, '.mjs': loadCode, '.js': loadCode, '.cjs': loadCode, '.json': loadJson, noExt: loadJson },
  });
  if (opts.configFile) {
    const file = resolve(opts.cwd, opts.configFile);
    if (!statSync(file, { throwIfNoEntry: false })?.isFile()) {
      throw new NixdockError('CONFIG_NOT_FOUND', `Config file ${file} does not exist`, {
        location: { file },
        hint: `Check the --config path, or ${MINIMAL_CONFIG}`,
      });
    }
    const result = await explorer.load(file);
    return { filepath: file, config: result?.config };
  }
  const result = await explorer.search(opts.cwd);
  if (!result) {
    throw new NixdockError('CONFIG_NOT_FOUND', `No nixdock config found in ${opts.cwd} or its parents (up to the nearest package.json)`, {
      expected: CONFIG_SEARCH_PLACES.map((p) => (p === 'package.json' ? 'a "nixdock" key in package.json' : p)).join(', '),
      hint: MINIMAL_CONFIG,
    });
  }
  return { filepath: result.filepath, config: result.config };
}

/**
 * The config file loadConfig would load, found without loading it (the search cosmiconfig does:
 * upwards from cwd, stopping at the nearest package.json). For a daemon that starts on a broken
 * config and waits for it to be fixed: it must know which file to watch.
 */
export function locateConfigFile(opts: LoadConfigOptions): string | undefined {
  if (opts.configFile) return resolve(opts.cwd, opts.configFile);
  for (let dir = resolve(opts.cwd); ; dir = dirname(dir)) {
    for (const place of CONFIG_SEARCH_PLACES) {
      const file = join(dir, place);
      if (!statSync(file, { throwIfNoEntry: false })?.isFile()) continue;
      if (place !== 'package.json' || hasNixdockKey(file)) return file;
    }
    if (statSync(join(dir, 'package.json'), { throwIfNoEntry: false }) || dirname(dir) === dir) return undefined;
  }
}

/**
 * The defaults of a project whose config does not load yet: no images, and the files to watch
 * for the fix (the config file and the file the error points at, say a spec file).
 */
export function placeholderConfig(configFile: string, alsoWatch: string[] = []): ResolvedConfig {
  const root = dirname(configFile);
  const topLevel = normalizeTopLevel({}, root);
  return { configFile, ...topLevel, images: [], dependencies: [...new Set([configFile, ...alsoWatch])] };
}

function hasNixdockKey(packageJson: string): boolean {
  try {
    return Object.hasOwn(JSON.parse(readFileSync(packageJson, 'utf8')) as object, 'nixdock');
  } catch {
    return false;
  }
}

export interface LoadSpecOptions {
  /** Logical store directory: strings under it are store paths. Default /nix/store. */
  storeDir?: string;
  /** Whether a JSON spec may carry commands, and the config field that says so (for the error). Default: refused. */
  commands?: { allowed: boolean; configFile: string; field: string };
}

/** Spec fields that run shell. */
const COMMAND_FIELDS = ['extraCommands', 'fakeRootCommands', 'runAsRoot'] as const;

/** Loads one spec file (JSON, TS or JS default export): one image, {images: […]}, or an array. */
export async function loadSpecFile(file: string, root: string, opts: LoadSpecOptions = {}): Promise<ImageSpec[]> {
  const absolute = resolve(root, file);
  if (!statSync(absolute, { throwIfNoEntry: false })?.isFile()) {
    throw new NixdockError('SPEC_NOT_FOUND', `Spec file ${absolute} does not exist`, {
      location: { file: absolute },
      hint: 'Create it or fix the path; spec paths are relative to the config file.',
    });
  }
  const data = extname(absolute) === '.json' ? parseJson(absolute, readFileSync(absolute, 'utf8'), 'SPEC_INVALID') : await importDefault(absolute);
  const validation = { code: 'SPEC_INVALID' as const, file: absolute, input: data };
  const storeDir = opts.storeDir ?? DEFAULT_STORE_DIR;
  const isData = extname(absolute) === '.json';
  const toSpec = (image: ImageSpecInput, field: string) => {
    if (isData && !opts.commands?.allowed) refuseCommands(image, absolute, field, opts.commands);
    return normalizeImage(image, { code: 'SPEC_INVALID', file: absolute, field, root, storeDir });
  };

  if (Array.isArray(data)) {
    const images = validate<ImageSpecInput[]>({ ...validation, field: '', schema: z.array(imageSpecSchema) });
    return everyImage(images, (image, i) => toSpec(image, `[${i}]`));
  }
  if (data !== null && typeof data === 'object' && 'images' in data) {
    const { images } = validate<z.infer<typeof specFileImagesSchema>>({ ...validation, field: '', schema: specFileImagesSchema });
    return everyImage(images, (image, i) => toSpec(image, `images[${i}]`));
  }
  return [toSpec(validate<ImageSpecInput>({ ...validation, field: '', schema: imageSpecSchema }), '')];
}

/** Normalises every image of a file; the problems of all of them are thrown together. */
function everyImage<T>(inputs: T[], normalize: (input: T, index: number) => ImageSpec): ImageSpec[] {
  const images: ImageSpec[] = [];
  const errors: NixdockError[] = [];
  inputs.forEach((input, i) => {
    try {
      images.push(normalize(input, i));
    } catch (err) {
      if (!(err instanceof NixdockError)) throw err;
      errors.push(err);
    }
  });
  if (errors.length > 0) throw combineErrors(errors);
  return images;
}

/**
 * A JSON spec file is data — written by a Nix expression, a generator, someone else — yet these
 * fields run shell as the caller (sandboxed, with a clean environment, but still code). The
 * config's author opts in; a TS/JS spec is code already and needs no opt-in.
 */
function refuseCommands(image: ImageSpecInput, file: string, field: string, commands: LoadSpecOptions['commands']): void {
  const name = COMMAND_FIELDS.find((key) => image[key] !== undefined);
  if (name === undefined) return;
  const at = field ? `${field}.${name}` : name;
  const optIn = commands?.field ?? 'specs.allowCommands';
  throw new NixdockError('SPEC_INVALID', `The JSON spec file ${file} carries ${name}, and the config does not allow commands in spec files`, {
    location: { file, field: at },
    found: JSON.stringify(String(image[name]).slice(0, 80)),
    expected: `no ${COMMAND_FIELDS.join('/')} in a JSON spec file, unless \`${optIn}: true\` is set`,
    hint: `A spec file is data, and ${name} runs shell. If you trust ${basename(file)}, set \`specs: { files: [...], allowCommands: true }\` in ${commands?.configFile ?? 'the config'} (field \`${optIn}\`); or move the commands into the config file itself.`,
  });
}

/** JSON.parse with errors that point at line and column. */
function parseJson(file: string, content: string, code: 'CONFIG_LOAD' | 'SPEC_INVALID'): unknown {
  try {
    return JSON.parse(content);
  } catch (err) {
    const message = (err as Error).message;
    const position = /at position (\d+)/.exec(message);
    const offset = position ? Number(position[1]) : content.length;
    const before = content.slice(0, offset).split('\n');
    throw new NixdockError(code, `${basename(file)} is not valid JSON: ${message.replace(/ in JSON at position \d+.*$/, '')}`, {
      location: { file, line: before.length, column: before[before.length - 1]!.length + 1 },
      found: JSON.stringify(content.slice(offset, offset + 20)),
      hint: 'Fix the JSON at that line and column (no trailing commas or comments in JSON).',
      cause: err,
    });
  }
}

// ─────────────────────────── spec globs ───────────────────────────

const SKIPPED_DIRS = new Set(['node_modules', '.git']);

/** Files matching the spec globs, sorted. A literal path that does not exist is SPEC_NOT_FOUND; a glob may match nothing. */
export function findSpecFiles(root: string, globs: string[], configFile: string, fieldPrefix = ''): string[] {
  const files = new Set<string>();
  globs.forEach((glob, i) => {
    const pattern = glob.replace(/^\.\//, '');
    const scan = picomatch.scan(pattern);
    if (!scan.isGlob) {
      const file = resolve(root, pattern);
      if (!statSync(file, { throwIfNoEntry: false })?.isFile()) {
        throw notFound(configFile, `${fieldPrefix ? `${fieldPrefix}.` : ''}specs[${i}]`, glob, file);
      }
      files.add(file);
      return;
    }
    const isMatch = picomatch(pattern, { dot: false });
    for (const file of walk(resolve(root, scan.base))) {
      if (isMatch(relative(root, file).split(sep).join('/'))) files.add(file);
    }
  });
  return [...files].sort();
}

function notFound(configFile: string, field: string, glob: string, file: string): NixdockError {
  return fieldError('SPEC_NOT_FOUND', configFile, {
    field,
    message: `The spec file ${file} named in \`${field}\` does not exist`,
    found: JSON.stringify(glob),
    expected: 'an existing file, or a glob (which may match nothing)',
    hint: 'Fix the path (relative to the config file) or create the file.',
  });
}

function* walk(dir: string): Generator<string> {
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) return;
  const entries = readdirSync(dir, { withFileTypes: true, encoding: 'utf8' }).sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const entry of entries) {
    if (entry.isDirectory() && !SKIPPED_DIRS.has(entry.name)) yield* walk(join(dir, entry.name));
    else if (entry.isFile()) yield join(dir, entry.name);
  }
}

// ─────────────────────────── checks across files ───────────────────────────

function assertUniqueNames(images: ImageSpec[], configFile: string): void {
  const byName = new Map<string, ImageSpec>();
  for (const image of images) {
    const first = byName.get(image.name);
    if (!first) {
      byName.set(image.name, image);
      continue;
    }
    const code: ConfigErrorCode = image.source.file === configFile ? 'CONFIG_INVALID' : 'SPEC_INVALID';
    throw fieldError(code, image.source.file, {
      field: image.source.field ? `${image.source.field}.name` : 'name',
      message: `Two images are named \`${image.name}\`: ${place(first)} and ${place(image)}`,
      found: JSON.stringify(image.name),
      expected: 'a name used by one image only',
      hint: 'Rename one of them; `nixdock build NAME` and the daemon tell images apart by name.',
    });
  }
}

function place(image: ImageSpec): string {
  return `${image.source.field || 'the image'} in ${image.source.file}`;
}
