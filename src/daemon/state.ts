/**
 * What a newly connected (or lagging) client needs to draw the current picture: per image its
 * state, the build in flight with its progress so far, the last recorded build and the last error.
 * Built from the event bus (live part) and the index (history part).
 */
import type { ImageSpec } from '../config/types.js';
import type { SerializedError } from '../errors.js';
import type { BuildEvent } from '../events.js';
import type { BuildSummaryMessage, CurrentBuild, ImageSnapshot, ImageState } from './protocol.js';

/** The part of the index the daemon reads (BuildCache satisfies it). */
export interface HistorySource {
  lastBuild(image: string): BuildSummaryMessage | undefined;
  history(image: string | undefined, limit: number): BuildSummaryMessage[];
}

export class LiveState {
  private readonly current = new Map<string, CurrentBuild>();
  private readonly errors = new Map<string, SerializedError>();
  configError?: SerializedError;

  /** Feed every bus event here. */
  observe(event: BuildEvent): void {
    const current = this.current.get(event.image);
    switch (event.type) {
      case 'build:started':
        this.current.set(event.image, {
          buildId: event.buildId, reason: '', startedAt: event.time, bytesDone: 0, bytesTotal: 0, layersDone: 0, layersTotal: 0,
        });
        return;
      case 'build:queued':
        return;
      case 'plan:done':
        if (current?.buildId === event.buildId) Object.assign(current, { layersTotal: event.layers, bytesTotal: event.bytes });
        return;
      case 'progress':
        if (current?.buildId === event.buildId) Object.assign(current, { bytesDone: event.bytesDone, bytesTotal: Math.max(current.bytesTotal, event.bytesTotal) });
        return;
      case 'layer:built':
      case 'layer:reused':
        if (current?.buildId === event.buildId) current.layersDone += 1;
        return;
      case 'build:succeeded':
        this.errors.delete(event.image);
        this.finish(event.image, event.buildId);
        return;
      case 'build:failed':
        this.errors.set(event.image, event.error);
        this.finish(event.image, event.buildId);
        return;
      case 'build:superseded':
        this.finish(event.image, event.buildId);
        return;
      default:
        return;
    }
  }

  /** The reason is known to the scheduler, not to build:started; it tells us here. */
  noteReason(image: string, buildId: string, reason: string): void {
    const current = this.current.get(image);
    if (current?.buildId === buildId) current.reason = reason;
  }

  snapshot(images: ImageSpec[], stateOf: (image: string) => ImageState, history: HistorySource): ImageSnapshot[] {
    return images.map((spec) => ({
      name: spec.name,
      state: stateOf(spec.name),
      source: { file: spec.source.file, field: spec.source.field },
      ...optional('current', this.current.get(spec.name)),
      ...optional('lastBuild', safe(() => history.lastBuild(spec.name))),
      ...optional('error', this.errors.get(spec.name)),
    }));
  }

  private finish(image: string, buildId: string): void {
    if (this.current.get(image)?.buildId === buildId) this.current.delete(image);
  }
}

function optional<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, V>);
}

/** A history read must never take the snapshot (and so the connection) down. */
function safe<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    return undefined;
  }
}
