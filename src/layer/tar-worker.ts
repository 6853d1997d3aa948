/**
 * The tar worker thread: given a planned entry list, it does the blocking opens, reads and closes,
 * writing the tar bytes into its shared ring (tar-worker-protocol.ts), so the file syscalls run in
 * parallel with copying, hashing and writing on the main thread. One job at a time; the worker is
 * reused for the next layer. When the ring is full it blocks in Atomics.wait until the reader
 * frees a slot (or cancels).
 */
import { parentPort } from 'node:worker_threads';
import { toNixdockError } from '../errors.js';
import { TarFiller } from './tar-filler.js';
import { HeaderTemplate } from './tar-header.js';
import { CHUNK_SIZE, CONTROL, RING_SLOTS, type TarJob, type TarWorkerMessage } from './tar-worker-protocol.js';

parentPort?.on('message', (job: TarJob) => runJob(job, (message) => parentPort!.postMessage(message)));

function runJob(job: TarJob, send: (message: TarWorkerMessage) => void): void {
  const control = new Int32Array(job.control);
  const ring = Buffer.from(job.ring);
  const filler = new TarFiller(job.entries, new HeaderTemplate(job.settings));
  try {
    for (let produced = 0; waitForFreeSlot(control, produced); produced++) {
      const start = (produced % RING_SLOTS) * CHUNK_SIZE;
      const length = filler.fill(ring.subarray(start, start + CHUNK_SIZE));
      if (length === 0) {
        send({ type: 'done' });
        return;
      }
      send({ type: 'chunk', length });
    }
  } catch (err) {
    send({ type: 'error', error: toNixdockError(err).toJSON() });
  } finally {
    filler.close();
  }
}

/** Blocks until the slot for chunk number `produced` is free; false when the reader cancelled. */
function waitForFreeSlot(control: Int32Array, produced: number): boolean {
  for (;;) {
    if (Atomics.load(control, CONTROL.cancelled) !== 0) return false;
    const consumed = Atomics.load(control, CONTROL.consumed);
    if (produced - consumed < RING_SLOTS) return true;
    Atomics.wait(control, CONTROL.consumed, consumed);
  }
}
