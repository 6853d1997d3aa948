/**
 * Validated input → the resolved shapes of ./types.ts: defaults applied, relative paths made
 * absolute against the file that wrote them, shorthand forms (Env records, port lists,
 * contents strings) turned into their one canonical form.
 */
import { statSync } from 'node:fs';
import { dirname, isAbsolute, posix, relative, resolve, sep } from 'node:path';
import { parseImageLocation } from '../image/location.js';
import { hostArchitecture } from '../image/platform.js';
import type { ContainerConfig, Installable } from '../types.js';
import { fieldError, joinField, render, type ConfigErrorCode } from './errors.js';
import { LAYER_BUDGET, type ContentsEntryInput, type FromImageInput, type ImageSpecInput, type NixdockConfigInput } from './schema.js';
import type { ContentsEntry, FromImage, ImageSpec, ResolvedConfig, StoreConfig } from './types.js';

export const DEFAULT_STORE_DIR = '/nix/store';
export const DEFAULT_CREATED = '1970-01-01T00:00:01Z';

/** Where an image spec was written and what it resolves against. */
export interface SpecContext {
  code: ConfigErrorCode;
  /** Absolute path of the file holding the spec. */
  file: string;
  /** Field path of the image inside the file ('' for a one-image spec file). */
  field: string;
  /** Project root (watch globs are stored relative to it). */
  root: string;
  /** Logical store directory: strings under it are store paths. */
  storeDir: string;
}

export function normalizeImage(input: ImageSpecInput, ctx: SpecContext): ImageSpec {
  const dir = dirname(ctx.file);
  const created = input.created ?? DEFAULT_CREATED;
  const architecture = input.architecture ?? defaultArchitecture(ctx);
  return {
    name: input.name,
    ...(input.tag !== undefined && { tag: input.tag }),
    ...contentsOf(input, ctx),
    config: normalizeContainerConfig(input.config ?? {}),
    maxLayers: input.maxLayers ?? LAYER_BUDGET.default,
    layering: input.layering ?? 'stable',
    created,
    // dockerTools keeps file mtimes at 1970 whatever `created` says: `created: 'now'` must not change every layer.
    mtime: input.mtime ?? DEFAULT_CREATED,
    uid: input.uid ?? 0,
    gid: input.gid ?? 0,
    uname: input.uname ?? 'root',
    gname: input.gname ?? 'root',
    architecture,
    ...withVariant(architecture, input.variant, ctx),
    ...(input.extraCommands !== undefined && { extraCommands: input.extraCommands }),
    ...(input.fakeRootCommands !== undefined && { fakeRootCommands: input.fakeRootCommands }),
    ...(fakechroot(input, ctx) && { enableFakechroot: true }),
    ...(input.runAsRoot !== undefined && { runAsRoot: input.runAsRoot }),
    users: input.users ?? [],
    groups: input.groups ?? [],
    ...(input.binSh !== undefined && { binSh: storeFile(input.binSh, 'binSh', ctx) }),
    ...(input.usrBinEnv !== undefined && { usrBinEnv: storeFile(input.usrBinEnv, 'usrBinEnv', ctx) }),
    ...(input.caCertificates !== undefined && { caCertificates: storeFile(input.caCertificates, 'caCertificates', ctx) }),
    tmp: input.tmp ?? false,
    perms: (input.perms ?? []).map(({ mode, ...perm }) => ({ ...perm, ...(mode !== undefined && { mode: parseInt(mode, 8) }) })),
    includeStorePaths: input.includeStorePaths ?? true,
    includeNixDB: input.includeNixDB ?? false,
    ...(input.fromImage !== undefined && { fromImage: chooseArchiveImage(normalizeFromImage(input.fromImage, dir), input, ctx) }),
    ...(input.nixpkgsConf !== undefined && { nixpkgsConf: resolve(dir, input.nixpkgsConf) }),
    compression: input.compression ?? 'none',
    push: input.push ?? [],
    load: input.load ?? [],
    watch: (input.watch ?? []).map((glob) => relativeToRoot(ctx.root, dir, glob)),
    ...(input.run !== undefined && { run: { engine: input.run.engine, args: input.run.args ?? [], ports: input.run.ports ?? [] } }),
    source: { file: ctx.file, field: ctx.field },
  };
}

/** enableFakechroot changes how fakeRootCommands run: without them it would silently do nothing. */
function fakechroot(input: ImageSpecInput, ctx: SpecContext): boolean {
  if (input.enableFakechroot && input.fakeRootCommands === undefined) {
    const field = joinField(ctx.field, ['enableFakechroot']);
    throw fieldError(ctx.code, ctx.file, {
      field,
      message: '`enableFakechroot` applies to `fakeRootCommands`, which this image does not have',
      found: 'enableFakechroot: true without fakeRootCommands',
      expected: 'fakeRootCommands beside it',
      hint: 'Add the commands that should see the image root as /, or remove enableFakechroot.',
    });
  }
  return input.enableFakechroot ?? false;
}

// ─────────────────────────── contents ───────────────────────────

/** `contents` (layered), or `copyToRoot` (+ keepContentsDirlinks): buildImage's one layer. */
function contentsOf(input: ImageSpecInput, ctx: SpecContext): Pick<ImageSpec, 'contents' | 'singleLayer'> {
  const both = input.contents !== undefined && input.copyToRoot !== undefined;
  const stray = input.copyToRoot === undefined && input.keepContentsDirlinks !== undefined;
  if (both || stray) {
    const field = joinField(ctx.field, [both ? 'copyToRoot' : 'keepContentsDirlinks']);
    throw fieldError(ctx.code, ctx.file, {
      field,
      message: both ? 'An image has `contents` (layered, like buildLayeredImage) or `copyToRoot` (one layer, like buildImage), not both' : '`keepContentsDirlinks` applies to `copyToRoot` only',
      found: both ? 'contents and copyToRoot' : 'keepContentsDirlinks without copyToRoot',
      expected: both ? 'one of them' : 'copyToRoot: [...] beside it',
      hint: both ? 'Move every entry into one list: contents for a layer per store path, copyToRoot for buildImage\'s single layer.' : 'contents are linked into the root (symlinkJoin), so there are no directory links to keep; remove it or use copyToRoot.',
    });
  }
  const field = input.copyToRoot !== undefined ? 'copyToRoot' : 'contents';
  const entries = input.copyToRoot ?? input.contents ?? [];
  return {
    contents: entries.map((entry, i) => normalizeContents(entry, { ...ctx, field: joinField(ctx.field, [field, i]) })),
    ...(input.copyToRoot !== undefined && { singleLayer: { keepContentsDirlinks: input.keepContentsDirlinks ?? false } }),
  };
}

const STORE_NAME = /^[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]+$/;
const CONTENTS_FORMS = 'a store path, "./file.nix[#attr]", a flake reference ("x#attr"), or an existing directory ("./dir")';

function normalizeContents(entry: ContentsEntryInput, ctx: SpecContext): ContentsEntry {
  const dir = dirname(ctx.file);
  if (typeof entry !== 'string') {
    if ('storePath' in entry) return storePath(entry.storePath, ctx);
    if ('nix' in entry) return nixFile(resolve(dir, entry.nix), entry.attr, entry.nix, { ...ctx, field: joinField(ctx.field, ['nix']) });
    if ('flake' in entry) return { kind: 'installable', installable: { kind: 'flake', ref: absoluteFlakeRef(entry.flake, dir) } };
    return localDir(resolve(dir, entry.dir), entry.dir, ctx);
  }
  if (entry.startsWith(`${ctx.storeDir}/`)) return storePath(entry, ctx);
  const nix = /^(.*\.nix)(?:#(.*))?$/.exec(entry);
  if (nix) return nixFile(resolve(dir, nix[1]!), nix[2] || undefined, nix[1]!, ctx);
  if (entry.includes('#') || /^[a-z][a-z0-9+.-]*:/.test(entry)) {
    return { kind: 'installable', installable: { kind: 'flake', ref: absoluteFlakeRef(entry, dir) } };
  }
  if (entry.startsWith('.') || isAbsolute(entry)) return localDir(resolve(dir, entry), entry, ctx);
  throw fieldError(ctx.code, ctx.file, {
    field: ctx.field,
    message: `\`${ctx.field}\` is not a store path, Nix installable or directory`,
    found: render(entry),
    expected: CONTENTS_FORMS,
    hint: `A local directory needs a leading "./" ("./${entry}"); a flake package needs "#" ("nixpkgs#${entry}").`,
  });
}

function storePath(path: string, ctx: SpecContext): ContentsEntry {
  const rest = path.startsWith(`${ctx.storeDir}/`) ? path.slice(ctx.storeDir.length + 1) : undefined;
  if (rest !== undefined && STORE_NAME.test(rest.replace(/\/+$/, ''))) return { kind: 'storePath', path: `${ctx.storeDir}/${rest.replace(/\/+$/, '')}` };
  throw fieldError(ctx.code, ctx.file, {
    field: ctx.field,
    message: `\`${path}\` is not a store path of ${ctx.storeDir}`,
    found: render(path),
    expected: `${ctx.storeDir}/<32-character hash>-<name> (the store path itself, not a file inside it)`,
    hint: rest?.includes('/') ? `Name the store path (${ctx.storeDir}/${rest.split('/')[0]}); its whole tree goes into the image.` : 'Copy the path from `nix-build` or `nix path-info` output.',
  });
}

/** binSh, usrBinEnv, caCertificates: a path in the store (a link to it goes into the image, and its closure). */
function storeFile(path: string, field: string, ctx: SpecContext): string {
  const rest = path.startsWith(`${ctx.storeDir}/`) ? path.slice(ctx.storeDir.length + 1) : undefined;
  if (rest !== undefined && STORE_NAME.test(rest.split('/')[0]!)) return path;
  throw fieldError(ctx.code, ctx.file, {
    field: joinField(ctx.field, [field]),
    message: `\`${joinField(ctx.field, [field])}\` is not a path in ${ctx.storeDir}`,
    found: render(path),
    expected: `${ctx.storeDir}/<hash>-<name>[/…], e.g. ${ctx.storeDir}/…-bash-5.2/bin/bash`,
    hint: 'Put the store path in (from nix-build or a Nix-generated config); a package in contents that has bin/sh needs no binSh.',
  });
}

/** A Nix file installable; a file that is not there is bad input (exit 2) naming the field, not a failed nix-build. */
function nixFile(file: string, attr: string | undefined, written: string, ctx: SpecContext): ContentsEntry {
  const stat = statSync(file, { throwIfNoEntry: false });
  if (!stat || (stat.isDirectory() && !statSync(resolve(file, 'default.nix'), { throwIfNoEntry: false }))) {
    throw fieldError(ctx.code, ctx.file, {
      field: ctx.field,
      message: `\`${ctx.field}\` names the Nix file ${file}, which does not exist`,
      found: render(written),
      expected: 'an existing .nix file (or a directory with a default.nix), relative to the file that names it',
      hint: `Fix the path (relative to ${dirname(ctx.file)}) or create the file.`,
    });
  }
  const installable: Installable = { kind: 'file', file, ...(attr !== undefined && { attr }) };
  return { kind: 'installable', installable };
}

/** Path-like flake refs (".#x", "./sub#x", "path:./x#y") are made absolute so the realising cwd does not matter. */
function absoluteFlakeRef(ref: string, dir: string): string {
  const hash = ref.indexOf('#');
  const location = hash >= 0 ? ref.slice(0, hash) : ref;
  const fragment = hash >= 0 ? ref.slice(hash) : '';
  if (location === '.' || location.startsWith('./') || location.startsWith('../')) return `${resolve(dir, location)}${fragment}`;
  const path = /^path:(\.{1,2}(?:\/.*)?)$/.exec(location.split('?')[0]!);
  if (path) return `path:${resolve(dir, path[1]!)}${location.slice(5 + path[1]!.length)}${fragment}`;
  return ref;
}

function localDir(path: string, written: string, ctx: SpecContext): ContentsEntry {
  if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) return { kind: 'localDir', path };
  throw fieldError(ctx.code, ctx.file, {
    field: ctx.field,
    message: `\`${ctx.field}\` names the directory \`${written}\`, which does not exist`,
    found: `${render(written)} (resolved to ${path})`,
    expected: CONTENTS_FORMS,
    hint: `Relative paths resolve against ${dirname(ctx.file)}; create the directory or fix the path.`,
  });
}

// ─────────────────────────── runtime config ───────────────────────────

/** The OCI forms: Env as "K=V" strings, ports and volumes as {key: {}} records. */
function normalizeContainerConfig(input: NonNullable<ImageSpecInput['config']>): ContainerConfig {
  const { Env, ExposedPorts, Volumes, ...rest } = input;
  return {
    ...rest,
    ...(Env !== undefined && { Env: Array.isArray(Env) ? Env : Object.entries(Env).map(([k, v]) => `${k}=${v}`) }),
    ...(ExposedPorts !== undefined && { ExposedPorts: emptyRecord(Array.isArray(ExposedPorts) ? ExposedPorts.map(withProtocol) : Object.keys(ExposedPorts).map(withProtocol)) }),
    ...(Volumes !== undefined && { Volumes: emptyRecord(Array.isArray(Volumes) ? Volumes : Object.keys(Volumes)) }),
  };
}

const withProtocol = (port: string): string => (port.includes('/') ? port : `${port}/tcp`);

function emptyRecord(keys: string[]): Record<string, Record<string, never>> {
  return Object.fromEntries(keys.map((k) => [k, {}]));
}

// ─────────────────────────── platform ───────────────────────────

const VARIANTS: Record<string, { allowed: string[]; default?: string }> = {
  arm64: { allowed: ['v8'], default: 'v8' },
  arm: { allowed: ['v5', 'v6', 'v7'], default: 'v7' },
  amd64: { allowed: ['v1', 'v2', 'v3', 'v4'] },
};

function defaultArchitecture(ctx: SpecContext): string {
  const arch = hostArchitecture();
  if (arch) return arch;
  throw fieldError(ctx.code, ctx.file, {
    field: joinField(ctx.field, ['architecture']),
    message: `This host's architecture (${process.arch}) has no OCI name; set \`architecture\` explicitly`,
    expected: 'amd64, arm64, arm, 386, ppc64le, riscv64 or s390x',
    hint: "Add architecture: 'amd64' (or the platform the image is for).",
  });
}

function withVariant(architecture: string, variant: string | undefined, ctx: SpecContext): { variant?: string } {
  const rule = VARIANTS[architecture];
  if (variant === undefined) return rule?.default ? { variant: rule.default } : {};
  if (rule?.allowed.includes(variant)) return { variant };
  throw fieldError(ctx.code, ctx.file, {
    field: joinField(ctx.field, ['variant']),
    message: `\`${joinField(ctx.field, ['variant'])}\`: ${architecture} has ${rule ? `no variant ${variant}` : 'no variants'}`,
    found: render(variant),
    expected: rule ? `one of ${rule.allowed.join(', ')}` : 'no variant',
    hint: rule ? `Use one of ${rule.allowed.join(', ')}, or leave variant out.` : 'Remove `variant`.',
  });
}

// ─────────────────────────── base image, paths ───────────────────────────

function normalizeFromImage(input: FromImageInput, dir: string): FromImage {
  if (typeof input !== 'string') {
    if ('registry' in input) return { kind: 'registry', ref: input.registry, allowTag: input.allowTag ?? false };
    if ('dockerArchive' in input) return { kind: 'docker-archive', path: resolve(dir, input.dockerArchive) };
    return { kind: 'oci', path: resolve(dir, input.oci), ...(input.tag !== undefined && { tag: input.tag }) };
  }
  return parseImageLocation(input, dir);
}

/** fromImageName/fromImageTag pick an image of a docker-archive; with another kind of base they mean nothing. */
function chooseArchiveImage(from: FromImage, input: ImageSpecInput, ctx: SpecContext): FromImage {
  if (input.fromImageName === undefined && input.fromImageTag === undefined) return from;
  if (from.kind === 'docker-archive') {
    return { ...from, ...(input.fromImageName !== undefined && { name: input.fromImageName }), ...(input.fromImageTag !== undefined && { tag: input.fromImageTag }) };
  }
  const field = joinField(ctx.field, [input.fromImageName !== undefined ? 'fromImageName' : 'fromImageTag']);
  throw fieldError(ctx.code, ctx.file, {
    field,
    message: `\`${field}\` chooses an image of a docker-archive fromImage, but fromImage is ${from.kind === 'oci' ? 'an OCI layout' : 'a registry reference'}`,
    found: render(input.fromImageName ?? input.fromImageTag),
    expected: 'fromImage: "docker-archive:PATH"',
    hint: from.kind === 'oci' ? 'Choose the image of an OCI layout with its tag: "oci:DIR:TAG".' : 'Name the image in the reference itself.',
  });
}

/** A glob written relative to `dir`, re-expressed relative to the project root (posix separators). */
function relativeToRoot(root: string, dir: string, glob: string): string {
  if (isAbsolute(glob)) return glob;
  const rel = relative(root, dir).split(sep).join('/');
  return rel === '' ? glob : posix.normalize(`${rel}/${glob}`);
}

// ─────────────────────────── top level ───────────────────────────

/** The resolved config minus images/dependencies, which the loader gathers from several files. */
export function normalizeTopLevel(input: NixdockConfigInput, root: string): Omit<ResolvedConfig, 'configFile' | 'images' | 'dependencies'> {
  return {
    root,
    store: normalizeStore(input.store ?? 'nix', root),
    outDir: resolve(root, input.outDir ?? 'out'),
    cacheDir: resolve(root, input.cacheDir ?? '.nixdock'),
    formats: input.formats ?? ['oci'],
    daemon: {
      host: input.daemon?.host ?? '127.0.0.1',
      port: input.daemon?.port ?? 7391,
      debounceMs: input.daemon?.debounceMs ?? 150,
      watch: input.daemon?.watch ?? [],
    },
    cache: { from: input.cache?.from ?? [], ...(input.cache?.registry !== undefined && { registry: input.cache.registry }) },
    gc: { keepBuilds: input.gc?.keepBuilds ?? 5, afterBuild: input.gc?.afterBuild ?? true, cacheDays: input.gc?.cacheDays ?? 7 },
    specGlobs: specGlobsOf(input.specs),
  };
}

/** `specs` as a list of globs, whichever form the config used. */
export function specGlobsOf(specs: NixdockConfigInput['specs']): string[] {
  return (Array.isArray(specs) ? specs : specs?.files) ?? [];
}

function normalizeStore(input: NonNullable<NixdockConfigInput['store']>, root: string): StoreConfig {
  if (input === 'nix') return { type: 'nix', storeDir: DEFAULT_STORE_DIR };
  const storeDir = (input.storeDir ?? DEFAULT_STORE_DIR).replace(/\/+$/, '');
  return input.type === 'nix' ? { type: 'nix', storeDir } : { type: 'dir', path: resolve(root, input.path), storeDir };
}
