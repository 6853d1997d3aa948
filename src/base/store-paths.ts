/**
 * The store paths a base image already holds, so a buildImage-shaped layer does not repeat them
 * (buildImage lists the base layers' files and appends only the closure's files they lack).
 * A store path counts as present when the flattened layers have its top-level entry: store paths
 * are immutable, so the name stands for the whole tree. Only headers are read.
 */
import { forEachEntry, type ExportLayer } from '../export.js';
import { lexicalPath } from '../tar/safety.js';

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';

export async function baseStorePaths(layers: readonly ExportLayer[], storeDir: string, signal?: AbortSignal): Promise<Set<string>> {
  const storeRel = storeDir.split('/').filter(Boolean);
  const present = new Set<string>();
  for (const [i, layer] of layers.entries()) {
    const added: string[] = [];
    const removed: string[] = [];
    await forEachEntry(layer.open(), `base layer ${i + 1}`, signal, async (header, content) => {
      content.resume();
      const path = lexicalPath(header.name);
      if (path.length !== storeRel.length + 1 || storeRel.some((part, j) => path[j] !== part)) return;
      const name = path.at(-1)!;
      if (name === OPAQUE) removed.push('*');
      else if (name.startsWith(WHITEOUT)) removed.push(`${storeDir}/${name.slice(WHITEOUT.length)}`);
      else added.push(`${storeDir}/${name}`);
    });
    // A layer's whiteouts hide what the layers below have, not its own entries.
    for (const path of removed) {
      if (path === '*') present.clear();
      else present.delete(path);
    }
    for (const path of added) present.add(path);
  }
  return present;
}
