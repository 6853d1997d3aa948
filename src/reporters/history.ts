/**
 * The build-history writer: a reporter of the event bus, like the terminal and the daemon's
 * WebSocket. It follows one build by its id and writes its row in the build cache: started,
 * then succeeded (layers, digests, outputs), failed, or — when the build stopped without a
 * terminal event (aborted between layers) — superseded.
 */
import type { BuildCache } from '../cache/cache.js';
import type { BuildLayerInput } from '../cache/history.js';
import type { EventBus } from '../events.js';

/** How a build ended that emitted no terminal event: stopped between layers (ABORTED). */
export interface StoppedBuild {
  error: string;
  bytesWritten: number;
}

/**
 * Follows build `buildId` on `bus` into `cache`'s history. The returned function detaches it;
 * a build still open then (stopped, so no build:failed) is recorded as superseded.
 */
export function attachHistoryReporter(bus: EventBus, cache: BuildCache, buildId: string): (stopped?: StoppedBuild) => void {
  let row: number | undefined;
  const layers: BuildLayerInput[] = [];
  let bytesWritten = 0;
  const counts = () => ({
    layersBuilt: layers.filter((l) => l.built).length,
    layersReused: layers.filter((l) => !l.built).length,
    bytesWritten,
  });
  const off = bus.on(
    (event) => {
      if (event.buildId !== buildId) return;
      switch (event.type) {
        case 'build:started':
          row = cache.startBuild(event.image, event.reason ?? 'build');
          return;
        case 'layer:built':
        case 'layer:reused':
          layers.push({ index: event.index, ...(event.key !== undefined && { key: event.key }), diffId: event.diffId, size: event.size, built: event.type === 'layer:built', storePaths: event.storePaths });
          return;
        case 'progress':
          bytesWritten = event.bytesDone;
          return;
        case 'build:succeeded': {
          if (row === undefined) return;
          const { tag, configDigest, manifestDigest, layersBuilt, layersReused } = event;
          const recorded = (event.layers ?? []).map(({ key, diffId, size, built, storePaths }, index) => ({ index, key, diffId, size, built, storePaths }));
          cache.finishBuild(row, { status: 'succeeded', tag, configDigest, manifestDigest, layersBuilt, layersReused, bytesWritten: event.bytesWritten, layers: recorded });
          for (const output of event.outputs) cache.recordImageOutput(row, output);
          row = undefined;
          return;
        }
        case 'build:failed':
          if (row === undefined) return;
          bytesWritten = event.bytesWritten ?? bytesWritten;
          cache.finishBuild(row, { status: 'failed', error: event.error.message, ...counts(), layers: [] });
          row = undefined;
          return;
      }
    },
    { first: true },
  );
  return (stopped) => {
    off();
    if (row === undefined) return;
    bytesWritten = stopped?.bytesWritten ?? bytesWritten;
    cache.finishBuild(row, { status: 'superseded', error: stopped?.error ?? 'stopped before it finished', ...counts(), layers: [] });
  };
}
