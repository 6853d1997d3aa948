/**
 * dockerTools' exportImage: an image's layers flattened into one root filesystem tarball.
 *
 * Two passes over the layers keep memory at "one header per entry", never file contents:
 *   1. index: read every layer's headers into a tree, applying OCI whiteouts (`.wh.NAME` removes
 *      NAME from lower layers, `.wh..wh..opq` empties a directory of lower layers' entries) and
 *      overrides (a later entry replaces an earlier one; a non-directory replaces a whole subtree);
 *   2. emit: read the layers again, in order, and write each surviving entry where it occurs,
 *      streaming its content straight from the layer. A directory is written once, at its first
 *      surviving occurrence (so it precedes its children) with the metadata of its last.
 * Output order follows the input, so the same layers always give the same bytes.
 */
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar, { type Header, type Pack } from 'tar-stream';
import { NixdockError } from './errors.js';
import { createEntryChecker, lexicalPath, notATar } from './tar/safety.js';

export interface ExportLayer {
  open(): Readable;
  /** Names the layer in errors, e.g. `layer 2/3 (sha256:…) of oci:/x:v1` (a base layer's description). */
  description?: string;
}

/** Where an entry is written: layer index and entry sequence number within that layer. */
interface Position {
  layer: number;
  seq: number;
}

interface Placed {
  header: Header;
  /** The entry whose content (and, for non-directories, whose position) is used. */
  from: Position;
  emitAt: Position;
  path: string;
  /** A hard link whose target changed above it: written as a regular file at the target's position. */
  carried?: boolean;
}

interface TreeNode {
  children: Map<string, TreeNode>;
  entry?: Placed;
}

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';

export async function exportImage(layers: readonly ExportLayer[], out: Writable, signal?: AbortSignal): Promise<void> {
  const root: TreeNode = { children: new Map() };
  for (const [i, layer] of layers.entries()) await indexLayer(root, layer, i, layers.length, signal);
  const plan = planEmission(root);
  const pack = tar.pack();
  const writing = pipeline(pack, out, ...(signal ? [{ signal }] : []));
  try {
    for (const [i, layer] of layers.entries()) await emitLayer(pack, layer, i, plan, signal);
    pack.finalize();
  } catch (err) {
    pack.destroy(err as Error);
    await writing.catch(() => undefined);
    throw err;
  }
  await writing;
}

// ───────────────────────────── pass 1: index ─────────────────────────────

async function indexLayer(root: TreeNode, layer: ExportLayer, layerIndex: number, total: number, signal?: AbortSignal): Promise<void> {
  const layerName = layer.description ?? `layer ${layerIndex + 1}/${total}`;
  const check = createEntryChecker(layerName);
  const whiteouts: string[][] = [];
  const entries: Placed[] = [];
  let seq = 0;
  await forEachEntry(layer.open(), layerName, signal, async (header, content) => {
    // Placed by its lexically resolved name: `a/../b/x` is `b/x` to every extractor, and
    // `a/../.wh.secret` whites out `secret`.
    const path = check(header);
    content.resume();
    const name = path.at(-1) ?? '';
    const position = { layer: layerIndex, seq: seq++ };
    if (name.startsWith(WHITEOUT)) whiteouts.push(path);
    else if (path.length > 0) entries.push({ header, from: position, emitAt: position, path: path.join('/') });
  });
  // Whiteouts hide lower layers only, so they apply before this layer's own entries.
  for (const path of whiteouts) applyWhiteout(root, path);
  for (const entry of entries) place(root, entry);
}

function applyWhiteout(root: TreeNode, path: string[]): void {
  const name = path.at(-1)!;
  const dir = lookup(root, path.slice(0, -1));
  if (!dir) return;
  if (name === OPAQUE) dir.children.clear();
  else if (!name.startsWith(`${WHITEOUT}${WHITEOUT}`)) dir.children.delete(name.slice(WHITEOUT.length));
}

function place(root: TreeNode, entry: Placed): void {
  const path = entry.path.split('/');
  let node = root;
  for (const component of path.slice(0, -1)) {
    let child = node.children.get(component);
    if (!child) node.children.set(component, (child = { children: new Map() }));
    // Something placed under a former file: that file is gone, the path is a directory now.
    if (child.entry && child.entry.header.type !== 'directory') delete child.entry;
    node = child;
  }
  const name = path.at(-1)!;
  const existing = node.children.get(name);
  if (entry.header.type === 'directory' && existing) {
    // Same directory again: keep its first position (before its children) and its contents.
    if (existing.entry?.header.type === 'directory') entry.emitAt = existing.entry.emitAt;
    else if (existing.entry) existing.children.clear();
    existing.entry = entry;
    return;
  }
  // A non-directory replaces whatever was there, including a whole directory tree.
  node.children.set(name, { children: new Map(), entry });
}

function lookup(root: TreeNode, path: string[]): TreeNode | undefined {
  let node: TreeNode | undefined = root;
  for (const component of path) node = node?.children.get(component);
  return node;
}

// ───────────────────────────── planning ─────────────────────────────

interface EmissionPlan {
  /** Per layer: entry seq → the entry to write there. */
  byPosition: Map<number, Map<number, Placed>>;
  /** Per layer: name of a hard link target → the link written in its place (with its content). */
  carriers: Map<number, Map<string, Placed>>;
}

function planEmission(root: TreeNode): EmissionPlan {
  const placed: Placed[] = [];
  collect(root, placed);
  const finalByPath = new Map(placed.map((p) => [p.path, p]));
  const plan: EmissionPlan = { byPosition: new Map(), carriers: new Map() };
  for (const entry of placed) {
    if (entry.header.type === 'link') planHardLink(entry, finalByPath, plan);
    if (!entry.carried) mapFor(plan.byPosition, entry.emitAt.layer).set(entry.emitAt.seq, entry);
  }
  return plan;
}

function collect(node: TreeNode, into: Placed[]): void {
  if (node.entry) into.push(node.entry);
  for (const child of node.children.values()) collect(child, into);
}

/**
 * A hard link stays a link when its target is still, in the output, the file it linked to.
 * Otherwise (the target was replaced or whited out above) the first such link takes the target's
 * content from its own layer and the others link to that one.
 */
function planHardLink(link: Placed, finalByPath: Map<string, Placed>, plan: EmissionPlan): void {
  const targetPath = lexicalPath(link.header.linkname ?? '').join('/');
  const target = finalByPath.get(targetPath);
  // The target's surviving entry was written before the link (this layer or a lower one): still the file it linked to.
  const before = target && (target.from.layer < link.from.layer || (target.from.layer === link.from.layer && target.from.seq < link.from.seq));
  if (target && before && target.header.type === 'file') {
    link.header = { ...link.header, linkname: target.path };
    return;
  }
  const carriers = mapFor(plan.carriers, link.from.layer);
  const carrier = carriers.get(targetPath);
  if (carrier) link.header = { ...link.header, linkname: carrier.path };
  else {
    link.carried = true;
    carriers.set(targetPath, link);
  }
}

function mapFor<K, V>(map: Map<number, Map<K, V>>, key: number): Map<K, V> {
  let inner = map.get(key);
  if (!inner) map.set(key, (inner = new Map()));
  return inner;
}

// ───────────────────────────── pass 2: emit ─────────────────────────────

async function emitLayer(pack: Pack, layer: ExportLayer, layerIndex: number, plan: EmissionPlan, signal?: AbortSignal): Promise<void> {
  const byPosition = plan.byPosition.get(layerIndex);
  const carriers = plan.carriers.get(layerIndex);
  if (!byPosition && !carriers) return;
  let seq = 0;
  await forEachEntry(layer.open(), layer.description ?? `layer ${layerIndex + 1}`, signal, async (header, content) => {
    const entry = byPosition?.get(seq++);
    const carrier = header.type === 'file' ? carriers?.get(lexicalPath(header.name).join('/')) : undefined;
    if (carrier) {
      await writeEntry(pack, { ...outputHeader(carrier), type: 'file', linkname: '', size: header.size, mode: header.mode }, content);
    } else if (entry) {
      await writeEntry(pack, outputHeader(entry), entry.header.type === 'file' ? content : undefined);
    }
    content.resume();
  });
}

/** Relative names (as `docker export` writes them), directories with a trailing slash. */
function outputHeader(entry: Placed): Header {
  const { header } = entry;
  return {
    name: header.type === 'directory' ? `${entry.path}/` : entry.path,
    type: header.type,
    mode: header.mode,
    uid: header.uid,
    gid: header.gid,
    uname: header.uname,
    gname: header.gname,
    mtime: header.mtime,
    size: header.type === 'file' ? header.size : 0,
    linkname: header.linkname,
    devmajor: header.devmajor,
    devminor: header.devminor,
  };
}

function writeEntry(pack: Pack, header: Header, content?: Readable): Promise<void> {
  return new Promise((resolve, reject) => {
    const sink = pack.entry(header, (err) => (err ? reject(err) : resolve()));
    if (!content) return;
    content.on('error', reject);
    content.pipe(sink);
  });
}

/** Runs `visit` for each entry in order; the entry's content must be consumed (or resumed). */
export async function forEachEntry(layerTar: Readable, layerName: string, signal: AbortSignal | undefined, visit: (header: Header, content: Readable) => Promise<void>): Promise<void> {
  const extract = tar.extract();
  layerTar.on('error', (err) => extract.destroy(err));
  layerTar.pipe(extract);
  let visiting = false;
  try {
    for await (const entry of extract) {
      signal?.throwIfAborted();
      visiting = true;
      await visit(entry.header, entry as unknown as Readable);
      visiting = false;
    }
  } catch (err) {
    layerTar.unpipe(extract);
    layerTar.destroy();
    // What the tar parser says (`Invalid tar header`) is about the layer, not about nixdock.
    throw visiting || err instanceof NixdockError || signal?.aborted ? err : notATar(layerName, err);
  }
}
