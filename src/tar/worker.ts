/**
 * The tar worker thread: given a planned entry list, it does the blocking opens, reads and closes
 * (filler.ts) and either writes the tar into a file descriptor itself, hashing it on the way
 * (`fd` jobs), or hands it over through its shared ring (`ring` jobs, blocking in Atomics.wait
 * while the ring is full). One job at a time; the worker is reused for the next layer. The
 * protocol is in worker-protocol.ts.
 */
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { toNixdockError } from '../errors.js';
import { writeAll } from '../util/fd.js';
import { TarFiller } from './filler.js';
import { HeaderTemplate } from './header.js';
import { CHUNK_SIZE, CONTROL, PROGRESS_EVERY, RING_SLOTS, type FdJob, type RingJob, type TarJob, type TarWorkerMessage } from './worker-protocol.js';

type Send = (message: TarWorkerMessage) => void;

parentPort?.on('message', (job: TarJob) => runJob(job, (message) => parentPort!.postMessage(message)));

function runJob(job: TarJob, send: Send): void {
  const filler = new TarFiller(job.entries, new HeaderTemplate(job.settings));
  try {
    if (job.kind === 'fd') writeIntoFd(job, filler, send);
    else fillRing(job, filler, send);
  } catch (err) {
    send({ type: 'error', error: toNixdockError(err).toJSON() });
  } finally {
    filler.close();
  }
}

/** The worker's own buffer for fd jobs (one job at a time, so one buffer). */
let fdBuffer: Buffer | undefined;

function writeIntoFd(job: FdJob, filler: TarFiller, send: Send): void {
  const control = new Int32Array(job.control);
  const buffer = (fdBuffer ??= Buffer.allocUnsafe(CHUNK_SIZE));
  const hash = createHash('sha256');
  let reported = 0;
  let written = 0;
  for (let length = filler.fill(buffer); length > 0; length = filler.fill(buffer)) {
    if (Atomics.load(control, CONTROL.cancelled) !== 0) return;
    const chunk = buffer.subarray(0, length);
    hash.update(chunk);
    if (job.fd !== null) writeAll(job.fd, chunk);
    written += length;
    if (written - reported >= PROGRESS_EVERY) {
      send({ type: 'progress', bytes: written - reported });
      reported = written;
    }
  }
  if (written > reported) send({ type: 'progress', bytes: written - reported });
  send({ type: 'done', digest: `sha256:${hash.digest('hex')}` });
}

function fillRing(job: RingJob, filler: TarFiller, send: Send): void {
  const control = new Int32Array(job.control);
  const ring = Buffer.from(job.ring);
  const hash = job.hash ? createHash('sha256') : undefined;
  for (let produced = 0; waitForFreeSlot(control, produced); produced++) {
    const start = (produced % RING_SLOTS) * CHUNK_SIZE;
    const length = filler.fill(ring.subarray(start, start + CHUNK_SIZE));
    if (length === 0) {
      send({ type: 'done', ...(hash && { digest: `sha256:${hash.digest('hex')}` }) });
      return;
    }
    hash?.update(ring.subarray(start, start + length));
    send({ type: 'chunk', length });
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
