/**
 * A layer source seen with some of its parts replaced (a recorded diffId, a blob file to read
 * instead of the store, a progress counter around its bytes).
 *
 * Never `{ ...source }`: base layers are class instances whose size() and open() live on the
 * prototype, and a spread drops them ("source.size is not a function" on the first build whose
 * cache knew a base layer's recipe). Every member is delegated to the source instead.
 */
import type { LayerSource } from '../types.js';

type Replaceable = Partial<Pick<LayerSource, 'diffId' | 'tarFile' | 'size' | 'open' | 'writeToFd'>>;

export function layerSourceWith(source: LayerSource, parts: Replaceable): LayerSource {
  const writeToFd = 'writeToFd' in parts ? parts.writeToFd : source.writeToFd?.bind(source);
  return {
    kind: source.kind,
    key: source.key,
    storePaths: source.storePaths,
    description: source.description,
    diffId: 'diffId' in parts ? parts.diffId : source.diffId,
    tarFile: 'tarFile' in parts ? parts.tarFile : source.tarFile,
    size: parts.size ?? (() => source.size()),
    open: parts.open ?? (() => source.open()),
    ...(writeToFd && { writeToFd }),
  };
}
