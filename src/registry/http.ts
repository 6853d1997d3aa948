/**
 * The one way nixdock talks HTTP to registries and their token services. Everything a registry
 * sends is untrusted, so every request here is bounded:
 * - credentials go only to the origin they belong to (redirects and upload Locations on another
 *   host, port or scheme get none), and a change from https to http is refused outright;
 * - an idle timeout (no byte for a while) and an overall timeout end a stuck or trickling server;
 * - bodies are read against a cap: documents (manifests, tokens, error bodies) whole up to a
 *   limit, blobs streamed and stopped at the size their descriptor declared.
 */
import { Readable } from 'node:stream';
import { NixdockError } from '../errors.js';

/** The limits of one client; every field has a default (REGISTRY_LIMITS) and most an env variable. */
export interface RegistryLimits {
  /** No byte received (or sent) for this long ends the request (NIXDOCK_REGISTRY_IDLE_TIMEOUT, seconds). */
  idleTimeoutMs: number;
  /** A whole manifest, token, ping or error exchange (NIXDOCK_REGISTRY_TIMEOUT, seconds). */
  documentTimeoutMs: number;
  /** A whole blob download or upload (NIXDOCK_REGISTRY_BLOB_TIMEOUT, seconds). */
  blobTimeoutMs: number;
  /** Largest manifest or index accepted: containerd's limit. */
  manifestMaxBytes: number;
  /** Largest token-service answer accepted. */
  tokenMaxBytes: number;
  /** Bytes of an error body read to find its message (the message itself is cut to 200 characters). */
  errorBodyMaxBytes: number;
  /** Redirects followed per request. */
  maxRedirects: number;
}

export const REGISTRY_LIMITS: Readonly<RegistryLimits> = {
  idleTimeoutMs: 60_000,
  documentTimeoutMs: 300_000,
  blobTimeoutMs: 3_600_000,
  manifestMaxBytes: 4 * 1024 * 1024,
  tokenMaxBytes: 1024 * 1024,
  errorBodyMaxBytes: 64 * 1024,
  maxRedirects: 5,
};

const TIMEOUT_ENV: Array<[keyof RegistryLimits, string]> = [
  ['idleTimeoutMs', 'NIXDOCK_REGISTRY_IDLE_TIMEOUT'],
  ['documentTimeoutMs', 'NIXDOCK_REGISTRY_TIMEOUT'],
  ['blobTimeoutMs', 'NIXDOCK_REGISTRY_BLOB_TIMEOUT'],
];

/** Defaults, then timeouts from the environment (seconds), then explicit overrides. */
export function registryLimits(overrides: Partial<RegistryLimits> = {}, env: NodeJS.ProcessEnv = process.env): RegistryLimits {
  const limits = { ...REGISTRY_LIMITS };
  for (const [key, name] of TIMEOUT_ENV) {
    const text = env[name];
    if (text === undefined || text === '') continue;
    const seconds = Number(text);
    if (!Number.isFinite(seconds) || seconds <= 0) {
      throw new NixdockError('INPUT_INVALID', `${name} is not a number of seconds`, { location: { field: name }, found: JSON.stringify(text), expected: 'a positive number of seconds, e.g. 120' });
    }
    limits[key] = Math.round(seconds * 1000);
  }
  return { ...limits, ...overrides };
}

export type Phase = 'document' | 'blob';

export interface HttpRequest {
  method?: string;
  url: string;
  headers?: Record<string, string>;
  /** Sent only when the request (after any redirect) goes to this origin. */
  authorization?: { origin: string; header: string };
  body?: Readable | Buffer;
  phase: Phase;
  signal?: AbortSignal;
}

/** A response and the deadline still running for its body; `done()` when the body is finished with. */
export interface HttpResponse {
  res: Response;
  url: URL;
  deadline: Deadline;
}

let requestsSent = 0;

/** HTTP requests sent to registries and token services by this process so far (round trips: `push --json` reports them). */
export function registryRequests(): number {
  return requestsSent;
}

/** fetch with the origin rule, manual redirects and the deadline; the body is not read yet. */
export async function httpRequest(req: HttpRequest, limits: RegistryLimits): Promise<HttpResponse> {
  const deadline = new Deadline(limits, req.phase, req.signal);
  let url = new URL(req.url);
  try {
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { ...req.headers };
      if (req.authorization && url.origin === req.authorization.origin) headers.authorization = req.authorization.header;
      const body = hop === 0 ? req.body : undefined;
      requestsSent++;
      const res = await fetch(url, {
        method: hop === 0 ? (req.method ?? 'GET') : redirectMethod(req.method),
        headers,
        body: body instanceof Readable ? touching(body, deadline) : body,
        redirect: 'manual',
        signal: deadline.signal,
        ...(body instanceof Readable && { duplex: 'half' }),
      } as RequestInit);
      deadline.touch();
      const location = res.headers.get('location');
      if (!isRedirect(res.status) || !location || req.method === 'PUT' || req.method === 'PATCH' || req.method === 'POST') {
        return { res, url, deadline };
      }
      await res.body?.cancel();
      if (hop >= limits.maxRedirects) throw new NixdockError('REGISTRY', `${url.host} redirected more than ${limits.maxRedirects} times`, { found: location });
      url = checkedNextUrl(url, location);
    }
  } catch (err) {
    deadline.done();
    if (req.body instanceof Readable) req.body.destroy();
    throw deadline.reason ?? err;
  }
}

/**
 * Where a redirect or an upload Location leads, resolved against the URL it came from. A move
 * from https to http is refused: credentials, tokens and blob bytes would travel in clear text.
 */
export function checkedNextUrl(from: URL, location: string): URL {
  let next: URL;
  try {
    next = new URL(location, from);
  } catch {
    throw new NixdockError('REGISTRY', `${from.host} sent a Location that is not a URL`, { found: JSON.stringify(location.slice(0, 200)) });
  }
  if (next.protocol !== 'https:' && next.protocol !== 'http:') {
    throw new NixdockError('REGISTRY', `${from.host} sent a Location with scheme ${next.protocol}`, { found: clean(location), expected: 'an http(s) URL' });
  }
  if (from.protocol === 'https:' && next.protocol === 'http:') {
    throw new NixdockError('REGISTRY', `${from.host} sent nixdock from https to plain http`, {
      found: clean(location),
      expected: 'an https URL',
      hint: 'Refused: credentials and image bytes would travel unencrypted. This is a misconfigured registry or an attack on the connection.',
    });
  }
  return next;
}

/** The whole body if it is at most `max` bytes; otherwise REGISTRY naming what was too big. */
export async function readCapped(r: HttpResponse, max: number, what: string): Promise<Buffer> {
  try {
    const declared = Number(r.res.headers.get('content-length') ?? NaN);
    if (declared > max) throw tooBig(r.url, what, `${declared} bytes (Content-Length)`, max);
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of bodyChunks(r)) {
      total += chunk.length;
      if (total > max) throw tooBig(r.url, what, `more than ${max} bytes`, max);
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  } catch (err) {
    throw r.deadline.reason ?? err;
  } finally {
    await r.res.body?.cancel().catch(() => undefined);
    r.deadline.done();
  }
}

/** Up to `max` bytes of the body as text (error bodies); never fails. */
export async function readSome(r: HttpResponse, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of bodyChunks(r)) {
      chunks.push(chunk);
      total += chunk.length;
      if (total >= max) break;
    }
  } catch {
    // a body that fails half-way still gave what it gave
  } finally {
    await r.res.body?.cancel().catch(() => undefined);
    r.deadline.done();
  }
  return Buffer.concat(chunks).subarray(0, max).toString('utf8');
}

/** Discards the body (a status was all that was needed). */
export async function discard(r: HttpResponse): Promise<void> {
  await r.res.body?.cancel().catch(() => undefined);
  r.deadline.done();
}

/**
 * The body as a stream that ends in an error when the server sends more than `size` bytes (a blob
 * is never longer than its descriptor says), or when the deadline passes.
 */
export function streamExactly(r: HttpResponse, size: number, what: string): Readable {
  const declared = Number(r.res.headers.get('content-length') ?? NaN);
  if (declared > size) {
    void discard(r);
    throw tooBig(r.url, what, `${declared} bytes (Content-Length)`, size);
  }
  return Readable.from(
    (async function* () {
      let total = 0;
      try {
        for await (const chunk of bodyChunks(r)) {
          total += chunk.length;
          if (total > size) throw tooBig(r.url, what, `more than ${size} bytes`, size);
          yield chunk;
        }
      } catch (err) {
        throw r.deadline.reason ?? err;
      } finally {
        await r.res.body?.cancel().catch(() => undefined);
        r.deadline.done();
      }
    })(),
    { objectMode: false },
  );
}

async function* bodyChunks(r: HttpResponse): AsyncGenerator<Buffer> {
  if (!r.res.body) return;
  for await (const chunk of r.res.body as unknown as AsyncIterable<Uint8Array>) {
    r.deadline.touch();
    yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
}

function tooBig(url: URL, what: string, found: string, max: number): NixdockError {
  return new NixdockError('REGISTRY', `${url.host} sent ${what} larger than nixdock accepts`, {
    found,
    expected: `at most ${max} bytes`,
    hint: 'Nothing was kept. A registry sending more than it declared is broken or hostile.',
  });
}

/**
 * An idle timer (reset by every byte) and an overall timer for one request and its body. When one
 * fires, the request is aborted and `reason` says which limit ended it.
 */
export class Deadline {
  readonly signal: AbortSignal;
  reason?: NixdockError;
  private readonly ctl = new AbortController();
  private idle?: NodeJS.Timeout;
  private readonly total: NodeJS.Timeout;

  constructor(
    private readonly limits: RegistryLimits,
    phase: Phase,
    outer?: AbortSignal,
  ) {
    this.signal = outer ? AbortSignal.any([outer, this.ctl.signal]) : this.ctl.signal;
    const totalMs = phase === 'blob' ? limits.blobTimeoutMs : limits.documentTimeoutMs;
    const env = phase === 'blob' ? 'NIXDOCK_REGISTRY_BLOB_TIMEOUT' : 'NIXDOCK_REGISTRY_TIMEOUT';
    this.total = setTimeout(() => this.fire(`did not finish within ${seconds(totalMs)}`, env), totalMs);
    this.total.unref();
    this.touch();
  }

  touch(): void {
    if (this.reason) return;
    clearTimeout(this.idle);
    this.idle = setTimeout(() => this.fire(`sent nothing for ${seconds(this.limits.idleTimeoutMs)}`, 'NIXDOCK_REGISTRY_IDLE_TIMEOUT'), this.limits.idleTimeoutMs);
    this.idle.unref();
  }

  done(): void {
    clearTimeout(this.idle);
    clearTimeout(this.total);
  }

  private fire(what: string, env: string): void {
    this.done();
    this.reason = new NixdockError('REGISTRY', `The registry ${what}`, {
      found: 'a timeout',
      hint: `The registry or the network is stuck. A slow but working connection can be given more time with ${env}=<seconds>.`,
    });
    this.ctl.abort(this.reason);
  }
}

/** Passes an upload body through, each chunk the connection takes counting as progress (a 'data' listener would start the flow too early). */
/**
 * The body as a web stream of the Readable's own Buffers, each chunk touching the deadline. Not
 * the Readable itself: fetch would wrap it in a byte stream that copies every chunk twice, which
 * for a 1 GB layer cost ~2 s of copying and garbage collection (measured with --cpu-prof).
 */
function touching(body: Readable, deadline: Deadline): ReadableStream<Uint8Array> {
  const chunks = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const next = await chunks.next();
        if (next.done) return controller.close();
        deadline.touch();
        controller.enqueue(next.value);
      },
      cancel(reason) {
        body.destroy(reason instanceof Error ? reason : undefined);
      },
    },
    { highWaterMark: 0 },
  );
}

function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

function redirectMethod(method = 'GET'): string {
  return method === 'HEAD' ? 'HEAD' : 'GET';
}

function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}

/** Untrusted text for a message: control characters (terminal escapes) removed, cut to `max`. */
export function clean(text: string, max = 200): string {
  // eslint-disable-next-line no-control-regex
  const printable = text.replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]+/g, ' ').trim();
  return printable.length > max ? `${printable.slice(0, max)}…` : printable;
}
