/**
 * Per-image build scheduling: idle → running → running + one queued.
 *
 * A new request while a build runs queues (at most one: later requests fold into it) and aborts
 * the running build, which stops at its next layer boundary — finished layers stay cached — and
 * is reported as `build:superseded` naming the queued build that replaces it. The scheduler knows
 * nothing about how a build is done: it calls an injected RunBuild.
 */
import { randomBytes } from 'node:crypto';
import { NixdockError, toNixdockError } from '../errors.js';
import type { BuildEvent, EventBus } from '../events.js';
import type { ImageState } from './protocol.js';

export interface RunOptions {
  signal: AbortSignal;
  buildId: string;
  reason: string;
}

/** Builds one image; must emit its events on the same bus and reject with ABORTED when signalled. */
export type RunBuild = (image: string, opts: RunOptions) => Promise<unknown>;

interface Running {
  buildId: string;
  controller: AbortController;
  done: Promise<void>;
  /** Set when a newer request superseded this build: the id of the build that replaces it. */
  supersededBy?: string;
}

interface Slot {
  running?: Running;
  queued?: { buildId: string; reason: string };
}

let counter = 0;
/** Sortable, unique within a daemon run and across restarts. */
export function newBuildId(): string {
  counter += 1;
  return `${Date.now().toString(36)}-${counter.toString(36)}-${randomBytes(2).toString('hex')}`;
}

export class Scheduler {
  private readonly slots = new Map<string, Slot>();
  /** Build ids whose terminal event (succeeded/failed/superseded) was already emitted. */
  private readonly finished = new Set<string>();
  private stopping = false;

  constructor(
    private readonly run: RunBuild,
    private readonly bus: EventBus,
    private readonly makeBuildId: () => string = newBuildId,
  ) {
    bus.on((event) => {
      if (event.type === 'build:succeeded' || event.type === 'build:failed' || event.type === 'build:superseded') {
        this.finished.add(event.buildId);
      }
    });
  }

  /** Asks for a build of `image`. Returns the id of the build that will satisfy the request. */
  request(image: string, reason: string): string {
    if (this.stopping) throw new NixdockError('ABORTED', 'The daemon is shutting down');
    const slot = this.slot(image);
    if (!slot.running) return this.start(image, slot, this.makeBuildId(), reason);
    if (slot.queued) {
      slot.queued.reason = reason; // fold: one queued build covers every change seen so far
    } else {
      slot.queued = { buildId: this.makeBuildId(), reason };
      this.bus.emit({ type: 'build:queued', image, buildId: slot.queued.buildId, reason });
    }
    this.supersede(slot.running, slot.queued.buildId);
    return slot.queued.buildId;
  }

  stateOf(image: string): ImageState {
    const slot = this.slots.get(image);
    if (slot?.queued) return 'queued';
    return slot?.running ? 'running' : 'idle';
  }

  runningBuildId(image: string): string | undefined {
    return this.slots.get(image)?.running?.buildId;
  }

  /** Stops an image's work for good (e.g. it was removed from the config). */
  cancel(image: string, by: string): void {
    const slot = this.slots.get(image);
    if (!slot) return;
    slot.queued = undefined;
    if (slot.running) this.supersede(slot.running, by);
  }

  /** Resolves when no build is running or queued. */
  async idle(): Promise<void> {
    for (;;) {
      const running = [...this.slots.values()].map((s) => s.running?.done).filter((d): d is Promise<void> => !!d);
      if (running.length === 0) return;
      await Promise.all(running);
    }
  }

  /** Aborts every running build (at its next layer boundary; reported as superseded by "shutdown"), drops queued ones, and waits. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const slot of this.slots.values()) {
      slot.queued = undefined;
      if (slot.running) this.supersede(slot.running, 'shutdown');
    }
    await this.idle();
  }

  private slot(image: string): Slot {
    let slot = this.slots.get(image);
    if (!slot) this.slots.set(image, (slot = {}));
    return slot;
  }

  private supersede(running: Running, by: string): void {
    if (running.supersededBy) return;
    running.supersededBy = by;
    running.controller.abort(new NixdockError('ABORTED', `Superseded by ${by}`));
  }

  private start(image: string, slot: Slot, buildId: string, reason: string): string {
    const controller = new AbortController();
    const running: Running = { buildId, controller, done: Promise.resolve() };
    slot.running = running;
    running.done = this.execute(image, running, reason).finally(() => this.next(image, slot));
    return buildId;
  }

  private next(image: string, slot: Slot): void {
    slot.running = undefined;
    const queued = slot.queued;
    slot.queued = undefined;
    if (queued && !this.stopping) this.start(image, slot, queued.buildId, queued.reason);
  }

  /** Runs one build and makes sure it ends with exactly one terminal event. */
  private async execute(image: string, running: Running, reason: string): Promise<void> {
    const { buildId } = running;
    const started = Date.now();
    try {
      await this.run(image, { signal: running.controller.signal, buildId, reason });
    } catch (err) {
      const error = toNixdockError(err);
      if (running.supersededBy && (error.code === 'ABORTED' || running.controller.signal.aborted)) {
        this.emitOnce({ type: 'build:superseded', image, buildId, by: running.supersededBy });
      } else {
        this.emitOnce({ type: 'build:failed', image, buildId, error: error.toJSON(), ms: Date.now() - started });
      }
    } finally {
      this.finished.delete(buildId);
    }
  }

  private emitOnce(event: Extract<BuildEvent, { type: 'build:superseded' | 'build:failed' }>): void {
    if (this.finished.has(event.buildId)) return;
    this.bus.emit(event);
  }
}
