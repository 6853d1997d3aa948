/**
 * dockerTools' runAsRoot without a VM: the script runs as root, chrooted into the image's
 * filesystem (base layers + the customisation layer, extracted into a private directory) with the
 * store mounted read-only at its place, and what it changed becomes one layer on top. Store paths
 * the changed files name are its references: their closure joins the image, as for extraCommands.
 *
 * How (measured simplest and robust here): copy-diff instead of overlayfs. The lower layers are
 * flattened (export.ts, whiteouts applied) and extracted with GNU tar, every path's lstat is
 * recorded, bubblewrap runs the script with that directory as `/`, and the paths whose lstat
 * changed (or that appeared) are the layer's entries; paths that vanished become OCI whiteouts
 * (`.wh.NAME`). overlayfs would need the kernel to allow it in a user namespace and leaves
 * whiteouts as 0/0 device nodes to translate; the copy costs one extraction of the lower tree.
 *
 * Privileges: see ./chroot.ts (real chown as host root; uid 0 of a user namespace otherwise).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, lstatSync, mkdirSync, readdirSync, readlinkSync, writeFileSync, type BigIntStats } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { NixdockError } from '../errors.js';
import { exportImage, type ExportLayer } from '../export.js';
import { tarSize, writeTar } from '../tar/layer-tar.js';
import { compareCodePoints, type TarEntry, type TreeRoot } from '../tar/walk.js';
import type { Digest } from '../types.js';
import { withTempFile, writeNewFile } from '../util/atomic.js';
import type { CustomisationLayerSource } from './customisation-layer.js';
import { scanPathReferences } from './references.js';
import { chrootOwner, prepareMountPoints, runChrooted } from './chroot.js';
import { findExecutable, missingTool } from './sandbox.js';
import { removeTree } from './stage-tree.js';

export const RUN_AS_ROOT_LAYER_FORMAT = 'nixdock-run-as-root-layer/1';

export interface RunAsRootOptions {
  script: string;
  /** The layers below, in order (base layers, then the customisation layer). */
  lower: readonly ExportLayer[];
  storeDir: string;
  physicalStoreDir: string;
  /** mtime of every entry, and SOURCE_DATE_EPOCH. */
  mtime: number;
  tmpDir: string;
  /** PATH searched for bwrap and tar; default process.env.PATH. */
  path?: string;
}

/** One lstat, reduced to what says "changed". */
type Signature = string;

export async function runAsRootLayer(opts: RunAsRootOptions): Promise<CustomisationLayerSource> {
  const path = opts.path ?? process.env.PATH ?? '/usr/bin:/bin';
  const bwrap = findExecutable('bwrap', path);
  if (!bwrap) throw missingTool('runAsRoot', 'bwrap');
  await mkdir(opts.tmpDir, { recursive: true });
  const workDir = await mkdtemp(join(opts.tmpDir, 'nixdock-run-as-root-'));
  const root = join(workDir, 'root');
  try {
    mkdirSync(root);
    await extractLower(opts.lower, root);
    prepareMountPoints(root, opts.storeDir);
    const before = signatures(root);
    await runChrooted(bwrap, root, { ...opts, field: 'runAsRoot' });
    const tarPath = join(workDir, 'layer.tar');
    const { diffId, size, changed } = await packChanges(root, before, join(workDir, 'whiteouts'), tarPath, opts.mtime);
    // What the script wrote may name store paths (`ln -s /nix/store/…-lib/x /etc/x`): their closure joins the image.
    const inStore = (path: string) => lstatSync(join(opts.physicalStoreDir, path.slice(opts.storeDir.length + 1)), { throwIfNoEntry: false }) !== undefined;
    const references = scanPathReferences(changed.map((rel) => join(root, rel)), opts.storeDir, inStore);
    await removeTree(root);
    return {
      kind: 'customisation',
      key: createHash('sha256').update(`${RUN_AS_ROOT_LAYER_FORMAT}\n${diffId}`).digest('hex'),
      storePaths: [],
      references,
      description: 'runAsRoot',
      diffId,
      size: async () => size,
      open: () => createReadStream(tarPath),
      dispose: () => rm(workDir, { recursive: true, force: true }),
    };
  } catch (err) {
    await removeTree(workDir);
    throw err;
  }
}

/** The lower layers flattened (whiteouts applied) and extracted by GNU tar, owners kept when we can. */
async function extractLower(layers: readonly ExportLayer[], root: string): Promise<void> {
  const asRoot = process.getuid?.() === 0;
  const tar = spawn('tar', ['-x', '-C', root, '--numeric-owner', '-p', asRoot ? '--same-owner' : '--no-same-owner'], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  tar.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const input = new PassThrough();
  input.pipe(tar.stdin);
  const done = new Promise<number | null>((resolve, reject) => {
    tar.on('error', reject);
    tar.on('close', resolve);
  });
  await exportImage(layers, input);
  const code = await done;
  if (code !== 0) throw new NixdockError('LAYER_BUILD', `runAsRoot: extracting the image below it failed: ${stderr.trim()}`, { location: { field: 'runAsRoot' }, found: stderr.trim() });
}

/** Everything below root by relative name, with what a change alters (type, mode, owner, size, times, inode, target). */
function signatures(root: string): Map<string, Signature> {
  const out = new Map<string, Signature>();
  const visit = (rel: string): void => {
    for (const name of readdirSync(join(root, rel))) {
      const child = rel ? `${rel}/${name}` : name;
      const stats = lstatSync(join(root, child), { bigint: true });
      out.set(child, signature(stats, join(root, child)));
      if (stats.isDirectory()) visit(child);
    }
  };
  visit('');
  return out;
}

function signature(stats: BigIntStats, physical: string): Signature {
  const link = stats.isSymbolicLink() ? readlinkSync(physical) : '';
  return [stats.mode, stats.uid, stats.gid, stats.size, stats.mtimeNs, stats.ctimeNs, stats.ino, stats.rdev, link].join(':');
}

/**
 * The layer: changed and new paths (with their parent directories, so every entry has its
 * directory above it) and a whiteout for each vanished path whose parent survived, in walk order.
 */
async function packChanges(root: string, before: Map<string, Signature>, whiteoutDir: string, tarPath: string, mtime: number): Promise<{ diffId: Digest; size: number; changed: string[] }> {
  const tree: TreeRoot = { nameRoot: '', physicalRoot: root };
  const whiteouts: TreeRoot = { nameRoot: '', physicalRoot: whiteoutDir };
  const after = signatures(root);
  const changed = new Set([...after].filter(([rel, sig]) => before.get(rel) !== sig).map(([rel]) => rel));
  // A vanished directory is one whiteout; below a parent that is no longer a directory, the parent's own entry hides it.
  const survivingDir = (rel: string) => rel === '' || (after.has(rel) && lstatSync(join(root, rel)).isDirectory());
  const vanished = [...before.keys()].filter((rel) => !after.has(rel) && survivingDir(parentOf(rel)));
  for (const rel of [...changed, ...vanished]) for (let dir = parentOf(rel); dir !== ''; dir = parentOf(dir)) changed.add(dir);
  const whiteoutNames = vanished.map((rel) => (parentOf(rel) ? `${parentOf(rel)}/` : '') + `.wh.${rel.slice(rel.lastIndexOf('/') + 1)}`);
  for (const name of whiteoutNames) {
    mkdirSync(join(whiteoutDir, parentOf(name)), { recursive: true });
    writeFileSync(join(whiteoutDir, name), '');
  }
  const names = [...changed, ...whiteoutNames].sort(comparePaths);
  const whiteoutSet = new Set(whiteoutNames);
  const entries: TarEntry[] = names.map((rel) => (whiteoutSet.has(rel) ? whiteoutEntry(whiteouts, rel) : entryOf(tree, root, rel)));
  const settings = { uid: 0, gid: 0, uname: 'root', gname: 'root', mtime };
  const plan = { entries, settings, size: tarSize(entries, settings) };
  const diffId = await withTempFile(tarPath, (tmp) => writeNewFile(tmp, (fd) => writeTar(plan, fd)));
  return { diffId, size: plan.size, changed: [...changed] };
}

function parentOf(rel: string): string {
  const slash = rel.lastIndexOf('/');
  return slash === -1 ? '' : rel.slice(0, slash);
}

/** Depth-first, children in code-point order: compare component by component. */
function comparePaths(a: string, b: string): number {
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const order = compareCodePoints(x[i]!, y[i]!);
    if (order !== 0) return order;
  }
  return x.length - y.length;
}

function whiteoutEntry(tree: TreeRoot, name: string): TarEntry {
  return { tree, name, type: 'file', mode: 0, size: 0, linkName: '' };
}

function entryOf(tree: TreeRoot, root: string, rel: string): TarEntry {
  const physical = join(root, rel);
  const stats = lstatSync(physical);
  const owner = chrootOwner(stats.uid, stats.gid);
  const common = { tree, mode: stats.mode & 0o7777, linkName: '', size: 0, owner };
  if (stats.isDirectory()) return { ...common, name: `${rel}/`, type: 'dir' };
  if (stats.isSymbolicLink()) return { ...common, name: rel, type: 'symlink', linkName: readlinkSync(physical) };
  if (stats.isFile()) return { ...common, name: rel, type: 'file', size: stats.size };
  if (stats.isCharacterDevice() || stats.isBlockDevice()) {
    const device = { major: Math.floor(stats.rdev / 256) & 0xfff, minor: (stats.rdev & 0xff) | ((stats.rdev >> 12) & ~0xff) };
    return { ...common, name: rel, type: stats.isCharacterDevice() ? 'chardev' : 'blockdev', device };
  }
  throw new NixdockError('LAYER_BUILD', `runAsRoot made /${rel}, a FIFO or socket, which a layer cannot hold`, {
    location: { field: 'runAsRoot' },
    found: `/${rel}: a FIFO or socket`,
    expected: 'files, directories, symlinks and device nodes',
    hint: 'Remove it at the end of the script (or create it at run time).',
  });
}
