/**
 * The tar worker thread. A `ring` job does the blocking opens, reads and closes of a planned
 * entry list (filler.ts) into the worker's shared ring, blocking in Atomics.wait while the ring is
 * full; a `drain` job, in another worker, hashes and writes that ring's chunks into a file
 * descriptor. One job at a time; the worker is reused for the next layer. The protocol is in
 * worker-protocol.ts.
 */
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { toNixdockError } from '../errors.js';
import { writeAll } from '../util/fd.js';
import { TarFiller } from './filler.js';
import { HeaderTemplate } from './header.js';
import { CHUNK_SIZE, CONTROL, PROGRESS_EVERY, RING_SLOTS, type DrainJob, type RingJob, type TarJob, type TarWorkerMessage } from './worker-protocol.js';

type Send = (message: TarWorkerMessage) => void;

parentPort?.on('message', (job: TarJob) => runJob(job, (message) => parentPort!.postMessage(message)));

function runJob(job: TarJob, send: Send): void {
  try {
    if (job.kind === 'ring') fillRing(job, send);
    else drainRing(job, send);
  } catch (err) {
    send({ type: 'error', error: toNixdockError(err).toJSON() });
  }
}

function fillRing(job: RingJob, send: Send): void {
  const filler = new TarFiller(job.entries, new HeaderTemplate(job.settings));
  const control = new Int32Array(job.control);
  const ring = Buffer.from(job.ring);
  try {
    for (let produced = 0; waitForFreeSlot(control, produced); produced++) {
      const slot = produced % RING_SLOTS;
      const length = filler.fill(ring.subarray(slot * CHUNK_SIZE, (slot + 1) * CHUNK_SIZE));
      Atomics.store(control, CONTROL.lengths + slot, length);
      Atomics.store(control, CONTROL.produced, produced + 1);
      Atomics.notify(control, CONTROL.produced);
      if (length === 0) {
        send({ type: 'done' });
        return;
      }
      if (job.postChunks) send({ type: 'chunk', length });
    }
  } finally {
    filler.close();
  }
}

/** Blocks until the slot for chunk number `produced` is free; false when the job was cancelled. */
function waitForFreeSlot(control: Int32Array, produced: number): boolean {
  for (;;) {
    if (Atomics.load(control, CONTROL.cancelled) !== 0) return false;
    const consumed = Atomics.load(control, CONTROL.consumed);
    if (produced - consumed < RING_SLOTS) return true;
    Atomics.wait(control, CONTROL.consumed, consumed);
  }
}

function drainRing(job: DrainJob, send: Send): void {
  const control = new Int32Array(job.control);
  const ring = Buffer.from(job.ring);
  const hash = job.hash ? createHash('sha256') : undefined;
  let reported = 0;
  let written = 0;
  for (let consumed = 0; waitForFilledSlot(control, consumed); consumed++) {
    const slot = consumed % RING_SLOTS;
    const length = Atomics.load(control, CONTROL.lengths + slot);
    if (length === 0) {
      if (written > reported) send({ type: 'progress', bytes: written - reported });
      send({ type: 'done', ...(hash && { digest: `sha256:${hash.digest('hex')}` }) });
      return;
    }
    const chunk = ring.subarray(slot * CHUNK_SIZE, slot * CHUNK_SIZE + length);
    hash?.update(chunk);
    if (job.fd !== null) writeAll(job.fd, chunk);
    Atomics.store(control, CONTROL.consumed, consumed + 1);
    Atomics.notify(control, CONTROL.consumed);
    written += length;
    if (written - reported >= PROGRESS_EVERY) {
      send({ type: 'progress', bytes: written - reported });
      reported = written;
    }
  }
}

/** Blocks until chunk number `consumed` has been produced; false when the job was cancelled. */
function waitForFilledSlot(control: Int32Array, consumed: number): boolean {
  for (;;) {
    if (Atomics.load(control, CONTROL.cancelled) !== 0) return false;
    const produced = Atomics.load(control, CONTROL.produced);
    if (produced > consumed) return true;
    Atomics.wait(control, CONTROL.produced, produced);
  }
}
