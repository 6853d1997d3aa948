/**
 * Every stage reports what it does as typed events on one bus; stages never print.
 * Reporters (terminal progress, --json, the daemon's WebSocket, the build-history writer)
 * subscribe to the bus. The union below is also the daemon protocol's event payload.
 */
import type { Digest, OutputResult } from './types.js';
import type { SerializedError } from './errors.js';

export type BuildEvent =
  | { type: 'build:queued'; image: string; buildId: string; reason: string }
  | { type: 'build:started'; image: string; buildId: string; time: number }
  | { type: 'resolve:done'; image: string; buildId: string; paths: number; narSize: number }
  | { type: 'plan:done'; image: string; buildId: string; layers: number; bytes: number }
  | { type: 'layer:reused'; image: string; buildId: string; index: number; diffId: Digest; size: number; storePaths: string[] }
  | { type: 'layer:built'; image: string; buildId: string; index: number; diffId: Digest; size: number; ms: number; storePaths: string[] }
  | { type: 'progress'; image: string; buildId: string; bytesDone: number; bytesTotal: number; layersDone: number; layersTotal: number }
  | { type: 'output:written'; image: string; buildId: string; output: OutputResult }
  | { type: 'build:superseded'; image: string; buildId: string; by: string }
  | { type: 'build:failed'; image: string; buildId: string; error: SerializedError; ms: number }
  | {
      type: 'build:succeeded';
      image: string;
      buildId: string;
      tag: string;
      configDigest: Digest;
      manifestDigest?: Digest;
      layersBuilt: number;
      layersReused: number;
      bytesWritten: number;
      ms: number;
      outputs: OutputResult[];
    };

export type BuildEventType = BuildEvent['type'];
type Listener = (event: BuildEvent) => void;

/** A synchronous, in-process event bus. Listeners must not throw; errors in one do not reach the build. */
export class EventBus {
  private readonly listeners = new Set<Listener>();

  on(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event: BuildEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A broken reporter must never fail a build.
      }
    }
  }
}
