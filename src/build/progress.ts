/**
 * The events of one build of one image, emitted from the stages' results: started, planned,
 * each layer done, byte progress while layers are read, succeeded or failed. Counting lives here
 * too (layers built/reused, bytes), because the events carry the counts.
 */
import { randomUUID } from 'node:crypto';
import { Transform, pipeline, type Readable } from 'node:stream';
import type { NixdockError } from '../errors.js';
import type { EventBus } from '../events.js';
import type { BuildResult, Layer, LayerSource, WriteToFdOptions } from '../types.js';
import { layerSourceWith } from '../layer/source-view.js';
import type { PlanStats } from './plan.js';

/** Progress ticks at most this often: a terminal or a WebSocket needs no more. */
const PROGRESS_EVERY_MS = 100;

export class BuildProgress {
  readonly buildId: string;
  readonly startedAt = Date.now();
  layersBuilt = 0;
  layersReused = 0;
  bytesWritten = 0;
  private bytesTotal = 0;
  private layersTotal = 0;
  private progressAt = 0;

  constructor(
    readonly image: string,
    private readonly bus: EventBus,
    buildId?: string,
  ) {
    this.buildId = buildId ?? randomUUID();
  }

  started(reason: string): void {
    this.bus.emit({ type: 'build:started', image: this.image, buildId: this.buildId, time: this.startedAt, reason });
  }

  planned(stats: PlanStats): void {
    this.bytesTotal = stats.narSize;
    this.layersTotal = stats.layers;
    this.bus.emit({ type: 'resolve:done', image: this.image, buildId: this.buildId, paths: stats.paths, narSize: stats.narSize });
    this.bus.emit({ type: 'plan:done', image: this.image, buildId: this.buildId, layers: stats.layers, bytes: stats.narSize });
  }

  layerDone(layer: Layer, index: number, ms = 0): void {
    const common = { image: this.image, buildId: this.buildId, index, diffId: layer.diffId, size: layer.size, storePaths: [...layer.source.storePaths], key: layer.source.key };
    if (layer.built) {
      this.layersBuilt++;
      this.bus.emit({ type: 'layer:built', ...common, ms });
    } else {
      this.layersReused++;
      this.bus.emit({ type: 'layer:reused', ...common });
    }
  }

  succeeded(result: BuildResult): void {
    const { tag, configDigest, manifestDigest, layersBuilt, layersReused, bytesWritten, ms, outputs, layers } = result;
    this.bus.emit({
      type: 'build:succeeded', image: this.image, buildId: this.buildId, tag, configDigest, manifestDigest, layersBuilt, layersReused, bytesWritten, ms, outputs, layers,
    });
  }

  failed(error: NixdockError): void {
    this.bus.emit({ type: 'build:failed', image: this.image, buildId: this.buildId, error: error.toJSON(), ms: Date.now() - this.startedAt, bytesWritten: this.bytesWritten });
  }

  /** Wraps a source so reading it reports progress on the bus. */
  counted(source: LayerSource): LayerSource {
    const progress = this;
    const writeToFd = source.writeToFd?.bind(source);
    return layerSourceWith(source, {
      writeToFd: writeToFd && ((fd: number | undefined, opts?: WriteToFdOptions) => writeToFd(fd, { ...opts, onProgress: (bytes) => progress.addBytes(bytes) })),
      open(): Readable {
        const counter = new Transform({
          transform(chunk: Buffer, _enc, done) {
            progress.addBytes(chunk.length);
            done(null, chunk);
          },
        });
        // pipeline, not pipe: when the consumer fails, the layer stream (and its worker) is destroyed too.
        pipeline(source.open(), counter, () => {});
        return counter;
      },
    });
  }

  private addBytes(n: number): void {
    this.bytesWritten += n;
    const now = Date.now();
    if (now - this.progressAt < PROGRESS_EVERY_MS) return;
    this.progressAt = now;
    this.bus.emit({
      type: 'progress', image: this.image, buildId: this.buildId, bytesDone: this.bytesWritten,
      bytesTotal: Math.max(this.bytesTotal, this.bytesWritten), layersDone: this.layersBuilt + this.layersReused, layersTotal: this.layersTotal,
    });
  }
}
