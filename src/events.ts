/**
 * Every stage reports what it does as typed events on one bus; stages never print.
 * Reporters (terminal progress, --json, the daemon's WebSocket, the build-history writer)
 * subscribe to the bus. The union below is also the daemon protocol's event payload.
 */
import type { BuildResult, Digest, LayerResult, OutputResult } from './types.js';
import type { SerializedError } from './errors.js';

/** What a build:succeeded event says of its result (and the daemon protocol sends). */
export type SucceededFields = Pick<BuildResult, 'tag' | 'configDigest' | 'manifestDigest' | 'layersBuilt' | 'layersReused' | 'bytesWritten' | 'ms' | 'outputs'>;

export type BuildEvent =
  | { type: 'build:queued'; image: string; buildId: string; reason: string }
  /** One line of a tool's log while the build runs (today: Nix realising installables, its stderr). */
  | { type: 'log'; image: string; buildId: string; source: 'nix'; line: string }
  | { type: 'build:started'; image: string; buildId: string; time: number; reason?: string }
  | { type: 'resolve:done'; image: string; buildId: string; paths: number; narSize: number }
  | { type: 'plan:done'; image: string; buildId: string; layers: number; bytes: number }
  | { type: 'layer:reused'; image: string; buildId: string; index: number; diffId: Digest; size: number; storePaths: string[]; key?: string }
  | { type: 'layer:built'; image: string; buildId: string; index: number; diffId: Digest; size: number; ms: number; storePaths: string[]; key?: string }
  | { type: 'progress'; image: string; buildId: string; bytesDone: number; bytesTotal: number; layersDone: number; layersTotal: number }
  | { type: 'output:written'; image: string; buildId: string; output: OutputResult }
  | { type: 'build:superseded'; image: string; buildId: string; by: string }
  | { type: 'build:failed'; image: string; buildId: string; error: SerializedError; ms: number; bytesWritten?: number }
  | ({ type: 'build:succeeded'; image: string; buildId: string; layers?: LayerResult[] } & SucceededFields);

/**
 * Fields events carry inside the process only, for the history reporter (the reason a build
 * ran, layer recipe keys, the layers of a result, the bytes of a failed build). The daemon
 * protocol is a versioned public contract: it sends events without them (publicEvent).
 */
interface InProcessFields {
  'build:started': 'reason';
  'layer:reused': 'key';
  'layer:built': 'key';
  'build:succeeded': 'layers';
  'build:failed': 'bytesWritten';
}

/** A build event as the daemon protocol sends it. */
export type PublicBuildEvent = {
  [T in BuildEvent['type']]: Omit<Extract<BuildEvent, { type: T }>, T extends keyof InProcessFields ? InProcessFields[T] : never>;
}[BuildEvent['type']];

const IN_PROCESS: Partial<Record<BuildEvent['type'], string>> = {
  'build:started': 'reason', 'layer:reused': 'key', 'layer:built': 'key', 'build:succeeded': 'layers', 'build:failed': 'bytesWritten',
} satisfies { [T in keyof InProcessFields]: InProcessFields[T] };

export function publicEvent(event: BuildEvent): PublicBuildEvent {
  const field = IN_PROCESS[event.type];
  if (field === undefined || !(field in event)) return event;
  const { [field]: _dropped, ...rest } = event as unknown as Record<string, unknown>;
  return rest as PublicBuildEvent;
}

export type BuildEventType = BuildEvent['type'];
type Listener = (event: BuildEvent) => void;

/** A synchronous, in-process event bus. Listeners must not throw; errors in one do not reach the build. */
export class EventBus {
  private readonly listeners = new Set<Listener>();

  /** `first`: called before the listeners already attached (the history writer, so others see the build's row written). */
  on(listener: Listener, opts: { first?: boolean } = {}): () => void {
    if (opts.first) {
      const others = [...this.listeners];
      this.listeners.clear();
      this.listeners.add(listener);
      for (const other of others) this.listeners.add(other);
    } else {
      this.listeners.add(listener);
    }
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
