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
    case 'log':
      return `${event.image}: ${event.source}: ${event.line}`;
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
  if (event.type === 'log') return undefined; // a failure's error carries the log; success needs none of it
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
      // {total} is cli-progress's own raw value (it printed 868 MiB/2000003944): the size goes in {size}.
      format: ' {image} |{bar}| {percentage}% {done}/{size} · {layers} layers',
      hideCursor: true,
      clearOnComplete: false,
      autopadding: true,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, cliProgress.SingleBar>();
  const nix = nixStatusLine(stream);
  const layerTotals = new Map<string, number>();
  const layersDone = new Map<string, number>();
  const off = bus.on((event) => {
    nix.observe(event);
    const line = event.type === 'build:failed' || event.type === 'build:succeeded' || event.type === 'output:written' ? commandLine(event) : undefined;
    if (event.type === 'plan:done') {
      layerTotals.set(event.image, event.layers);
      layersDone.set(event.image, 0);
      bars.set(event.image, multibar.create(Math.max(event.bytes, 1), 0, { image: event.image, done: '0 B', size: formatBytes(event.bytes), layers: `0/${event.layers}` }));
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
    nix.stop();
    multibar.stop();
  };
}

/** Nix's "building '/nix/store/…-name.drv'..." as "building name"; undefined for other lines. */
export function nixStep(line: string): string | undefined {
  const m = /^(building|copying path|fetching|downloading) '([^']+)'/.exec(line);
  return m ? `${m[1]} ${m[2]!.replace(/^.*\/[0-9a-z]{32}-/, '').replace(/\.drv$/, '')}` : undefined;
}

/**
 * While Nix realises installables (before the layer plan, so before any progress bar), one
 * status line says what it builds and for how long, redrawn every second: a long nix-build no
 * longer shows a blank screen.
 */
function nixStatusLine(stream: NodeJS.WriteStream): { observe(event: BuildEvent): void; stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let step = 'evaluating';
  let image = '';
  let since = 0;
  const draw = () => stream.write(`\r\x1b[K ${image}: nix ${step} · ${Math.round((Date.now() - since) / 1000)} s`);
  const stop = () => {
    if (timer === undefined) return;
    clearInterval(timer);
    timer = undefined;
    stream.write('\r\x1b[K');
  };
  return {
    observe(event) {
      if (event.type === 'log') {
        if (timer === undefined) {
          image = event.image;
          since = Date.now();
          timer = setInterval(draw, 1000);
          timer.unref();
        }
        step = nixStep(event.line) ?? step;
        draw();
      } else if (event.type === 'resolve:done' || event.type === 'plan:done' || event.type === 'build:failed' || event.type === 'build:succeeded') {
        stop();
      }
    },
    stop,
  };
}
