/** Layers backed by tar files, shared by tar-writer.test.ts and its child process archive-child.ts. */
import type { Image, Layer } from '../../src/types.js';
import { assemble, fileLayerSource, knownLayer } from './fixtures.js';

/**
 * One layer per tar file. `verified`: as a layout blob after a build — trusted bytes, and the
 * source names its file (sinks may copy it directly).
 */
export function archiveLayers(files: string[], verified: boolean): Layer[] {
  return files.map((file) => {
    const layer = knownLayer(fileLayerSource(file, file), file);
    return verified ? { ...layer, verifiedBytes: true, source: { ...layer.source, tarFile: file } } : layer;
  });
}

export function childImage(layers: Layer[]): Image {
  return assemble('hello', layers, { Cmd: ['/bin/hello'] }, 'archive');
}
