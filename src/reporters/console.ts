/**
 * Terminal reporters of the build event stream: progress bars on a TTY, plain lines otherwise
 * (CI logs, pipes). Both write to stderr so stdout stays free for --json and `stream`.
 */
import cliProgress from 'cli-progress';
import type { BuildEvent, EventBus } from '../events.js';

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

const short = (digest: string) => digest.replace(/^sha256:/, '').slice(0, 12);

/** One line per meaningful event; progress ticks are dropped. */
export function plainLine(event: BuildEvent): string | undefined {
  switch (event.type) {
    case 'build:queued':
      return `${event.image}: queued (${event.reason})`;
    case 'build:started':
      return `${event.image}: building`;
    case 'resolve:done':
      // A nixpkgs conf.json names its paths but not their size (narSize 0).
      return `${event.image}: closure of ${event.paths} store paths${event.narSize > 0 ? `, ${formatBytes(event.narSize)}` : ''}`;
    case 'plan:done':
      return `${event.image}: ${event.layers} layers planned`;
    case 'layer:built':
      return `${event.image}: layer ${event.index + 1} built   ${short(event.diffId)} ${formatBytes(event.size)} in ${event.ms} ms`;
    case 'layer:reused':
      return `${event.image}: layer ${event.index + 1} reused  ${short(event.diffId)} ${formatBytes(event.size)}`;
    case 'output:written':
      return `${event.image}: wrote ${event.output.format} ${event.output.path ?? event.output.ref ?? ''}`.trimEnd();
    case 'build:superseded':
      return `${event.image}: superseded by ${event.by}`;
    case 'build:failed':
      return `${event.image}: failed: ${event.error.message}`;
    case 'build:succeeded':
      return `${event.image}:${event.tag} done in ${event.ms} ms (${event.layersBuilt} built, ${event.layersReused} reused)`;
    case 'progress':
      return undefined;
  }
}

/**
 * For one-shot commands, whose error boundary prints the whole error after the build: the
 * failure line names only the code, so Nix's log does not appear twice.
 */
function commandLine(event: BuildEvent): string | undefined {
  if (event.type === 'build:failed' && event.error.code === 'ABORTED' && event.error.message.includes('(EPIPE)')) return undefined; // ends quietly
  return event.type === 'build:failed' ? `${event.image}: failed [${event.error.code}]` : plainLine(event);
}

/** Attaches the right reporter for a one-shot command's terminal; returns a function that detaches it. */
export function attachConsoleReporter(bus: EventBus, stream: NodeJS.WriteStream = process.stderr): () => void {
  return stream.isTTY ? attachProgressBars(bus, stream) : attachPlainLines(bus, stream);
}

function attachPlainLines(bus: EventBus, stream: NodeJS.WritableStream): () => void {
  return bus.on((event) => {
    const line = commandLine(event);
    if (line) stream.write(line + '\n');
  });
}

function attachProgressBars(bus: EventBus, stream: NodeJS.WriteStream): () => void {
  const multibar = new cliProgress.MultiBar(
    {
      stream,
      format: ' {image} |{bar}| {percentage}% {done}/{total} · {layers} layers',
      hideCursor: true,
      clearOnComplete: false,
      autopadding: true,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, cliProgress.SingleBar>();
  const layerTotals = new Map<string, number>();
  const layersDone = new Map<string, number>();
  const off = bus.on((event) => {
    const line = event.type === 'build:failed' || event.type === 'build:succeeded' || event.type === 'output:written' ? commandLine(event) : undefined;
    if (event.type === 'plan:done') {
      layerTotals.set(event.image, event.layers);
      layersDone.set(event.image, 0);
      bars.set(event.image, multibar.create(Math.max(event.bytes, 1), 0, { image: event.image, done: '0 B', total: formatBytes(event.bytes), layers: `0/${event.layers}` }));
    } else if (event.type === 'progress') {
      bars.get(event.image)?.update(event.bytesDone, { done: formatBytes(event.bytesDone) });
    } else if (event.type === 'layer:built' || event.type === 'layer:reused') {
      const done = (layersDone.get(event.image) ?? 0) + 1;
      layersDone.set(event.image, done);
      bars.get(event.image)?.update({ layers: `${done}/${layerTotals.get(event.image) ?? '?'}` });
    } else if (event.type === 'build:succeeded' || event.type === 'build:failed') {
      const bar = bars.get(event.image);
      if (bar && event.type === 'build:succeeded') bar.update(bar.getTotal());
      bar?.stop();
    }
    if (line) multibar.log(line + '\n');
  });
  return () => {
    off();
    multibar.stop();
  };
}
