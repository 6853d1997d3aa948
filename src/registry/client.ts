/**
 * A small OCI distribution API client for one repository: authentication (challenge flow),
 * bounded retries with backoff on 5xx and dropped connections, and registry error JSON turned
 * into NixdockErrors. Blob and manifest operations used by push and pull build on `send`.
 */
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { NixdockError } from '../errors.js';
import type { Digest } from '../types.js';
import { authRejected, basicHeader, fetchBearerToken, findCredentials, parseChallenge, type Credentials } from './auth.js';
import { checkedNextUrl, clean, discard, httpRequest, readCapped, readSome, registryLimits, streamExactly, type HttpResponse, type Phase, type RegistryLimits } from './http.js';
import type { RegistryTarget } from './target.js';
import type { AuthOptions } from './types.js';

export interface ClientOptions {
  auth?: AuthOptions;
  signal?: AbortSignal;
  /** Access the token must grant on the repository. */
  actions: Array<'pull' | 'push'>;
  /** Other repositories on the same registry that blobs may be mounted from (pull access is asked for). */
  mountFrom?: string[];
  /** Tries per request, including the first (default 4). */
  tries?: number;
  /** First backoff delay; doubles on every retry (default 250 ms). */
  backoffMs?: number;
  /** PATCH size of the chunked-upload fallback (default 16 MiB). */
  chunkSize?: number;
  /** Timeouts and size caps (defaults: REGISTRY_LIMITS, timeouts also from NIXDOCK_REGISTRY_*TIMEOUT). */
  limits?: Partial<RegistryLimits>;
}

/** Bytes to upload, re-readable from any offset so a retry or a chunk can start over. */
export interface BlobBody {
  digest: Digest;
  size: number;
  read(start: number, endExclusive: number): Readable;
}

export function fileBody(path: string, digest: Digest, size: number): BlobBody {
  return { digest, size, read: (start, end) => createReadStream(path, { start, end: end - 1 }) };
}

export function bufferBody(bytes: Buffer, digest: Digest): BlobBody {
  return { digest, size: bytes.length, read: (start, end) => Readable.from([bytes.subarray(start, end)]) };
}

interface SendOptions {
  method: string;
  /** Path under /v2/<repository>/ or an absolute URL (upload locations). */
  url: string;
  headers?: Record<string, string>;
  body?: () => Readable | Buffer;
  /** Statuses that are answers, not errors. */
  expect: number[];
  /** Which overall timeout applies (default 'document'). */
  phase?: Phase;
}

/** Thrown for failures worth another try (5xx, dropped connection). */
class RetryableError extends Error {}

/** Statuses after which a monolithic PUT is retried as a chunked upload. */
const CHUNKED_FALLBACK = new Set([405, 413, 416]);
const RETRYABLE_NET = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);

export class RegistryClient {
  private authorization?: string;
  private authReady?: Promise<void>;
  private credentials?: Credentials;
  private readonly limits: RegistryLimits;
  /** The only origin the Authorization header is ever sent to. */
  private readonly origin: string;

  constructor(
    readonly target: RegistryTarget,
    private readonly opts: ClientOptions,
  ) {
    this.limits = registryLimits(opts.limits, opts.auth?.env ?? process.env);
    this.origin = new URL(target.baseUrl).origin;
  }

  // ─────────────── blobs ───────────────

  /** Size of the blob when the repository has it, undefined when not. */
  async blobSize(digest: Digest): Promise<number | undefined> {
    const r = await this.send({ method: 'HEAD', url: `blobs/${digest}`, expect: [200, 404] });
    await discard(r);
    return r.res.status === 200 ? Number(r.res.headers.get('content-length') ?? -1) : undefined;
  }

  /** Cross-repository mount; true when the registry linked the blob without an upload. */
  async mountBlob(digest: Digest, from: string): Promise<boolean> {
    const query = new URLSearchParams({ mount: digest, from });
    const r = await this.send({ method: 'POST', url: `blobs/uploads/?${query}`, expect: [201, 202] });
    if (r.res.status === 202) await this.cancelUpload(r);
    else await discard(r);
    return r.res.status === 201;
  }

  /** Monolithic upload (POST, then PUT with the bytes); chunked PATCHes when the registry refuses that. */
  async uploadBlob(body: BlobBody, onProgress?: (bytesSent: number) => void): Promise<void> {
    await this.withRetries(async () => {
      const location = await this.startUpload();
      const put = await this.attempt({
        method: 'PUT',
        url: withDigest(location, body.digest),
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.size) },
        body: () => counted(body.read(0, body.size), onProgress),
        expect: [201, ...CHUNKED_FALLBACK],
        phase: 'blob',
      });
      await discard(put);
      if (put.res.status === 201) return;
      await this.uploadChunked(body, onProgress);
    });
  }

  /**
   * Uploads bytes whose digest is known only once they have all passed (a layer compressed while
   * it is tarred): POST, one PATCH streaming the bytes (no length up front; what `docker push`
   * does), then PUT ?digest= with what `open().digest()` gives at the end. A stream cannot be
   * sent again, so each try calls `open` for a fresh one (the bytes are deterministic).
   */
  async uploadStream(open: () => { body: Readable; ended: Promise<Digest> }): Promise<void> {
    await this.withRetries(async () => {
      const location = await this.startUpload();
      const { body, ended } = open();
      ended.catch(() => undefined); // awaited below; until then a failure must not count as unhandled
      let patch: HttpResponse;
      try {
        patch = await this.attempt({ method: 'PATCH', url: location, headers: { 'content-type': 'application/octet-stream' }, body: () => body, expect: [202], phase: 'blob' });
      } catch (err) {
        body.destroy();
        // The producer's own failure (a store file gone, a tar error) says more than the broken upload.
        const cause = await ended.then(() => undefined, (e: unknown) => e);
        throw cause instanceof NixdockError ? cause : err;
      }
      await discard(patch);
      const digest = await ended;
      const put = await this.attempt({ method: 'PUT', url: withDigest(this.resolveLocation(patch, location), digest), headers: { 'content-length': '0' }, expect: [201] });
      await discard(put);
    });
  }

  private async uploadChunked(body: BlobBody, onProgress?: (bytesSent: number) => void): Promise<void> {
    const chunkSize = this.opts.chunkSize ?? 16 * 1024 * 1024;
    let location = await this.startUpload();
    for (let start = 0; start < body.size; start += chunkSize) {
      const end = Math.min(start + chunkSize, body.size);
      const res = await this.attempt({
        method: 'PATCH',
        url: location,
        headers: {
          'content-type': 'application/octet-stream',
          'content-length': String(end - start),
          'content-range': `${start}-${end - 1}`,
        },
        body: () => counted(body.read(start, end), (n) => onProgress?.(start + n)),
        expect: [202],
        phase: 'blob',
      });
      await discard(res);
      location = this.resolveLocation(res, location);
    }
    const done = await this.attempt({ method: 'PUT', url: withDigest(location, body.digest), headers: { 'content-length': '0' }, expect: [201] });
    await discard(done);
  }

  private async startUpload(): Promise<string> {
    const res = await this.attempt({ method: 'POST', url: 'blobs/uploads/', headers: { 'content-length': '0' }, expect: [202] });
    await discard(res);
    return this.resolveLocation(res);
  }

  /** Abandons an upload session the registry opened (a mount it could not do); failures do not matter. */
  private async cancelUpload(r: HttpResponse): Promise<void> {
    await discard(r);
    if (!r.res.headers.get('location')) return;
    const done = await this.attempt({ method: 'DELETE', url: this.resolveLocation(r), expect: [204, 404] }).catch(() => undefined);
    if (done) await discard(done);
  }

  /**
   * Bytes [start, end) of the blob by a ranged GET, with the blob's total size from Content-Range
   * (so the answer is also the blob's HEAD); undefined when the blob is absent or the registry
   * answers with anything but that range: never more than the range is read.
   */
  async blobRange(digest: Digest, start: number, end: number): Promise<{ bytes: Buffer; total: number } | undefined> {
    const r = await this.send({ method: 'GET', url: `blobs/${digest}`, headers: { range: `bytes=${start}-${end - 1}` }, expect: [200, 206, 404, 416] });
    const total = Number(/^bytes \d+-\d+\/(\d+)$/.exec(r.res.headers.get('content-range') ?? '')?.[1] ?? NaN);
    if (r.res.status !== 206 || !Number.isSafeInteger(total)) {
      await discard(r);
      return undefined;
    }
    const bytes = await readCapped(r, end - start, `bytes ${start}-${end - 1} of blob ${digest}`).catch(() => undefined);
    return bytes?.length === Math.min(end, total) - start ? { bytes, total } : undefined;
  }

  /** The blob's bytes, ended with an error past `size` (unverified otherwise: the caller hashes them). */
  async openBlob(digest: Digest, size: number): Promise<Readable> {
    const r = await this.send({ method: 'GET', url: `blobs/${digest}`, expect: [200], phase: 'blob' });
    return streamExactly(r, size, `blob ${digest}`);
  }

  /**
   * Whether the repository has any tag (GET tags/list?n=1). An empty or unknown repository holds
   * no blob a HEAD could find; anything but a clear answer counts as not empty.
   */
  async hasTags(): Promise<boolean> {
    const r = await this.send({ method: 'GET', url: 'tags/list?n=1', expect: [200, 404] });
    if (r.res.status === 404) {
      await discard(r);
      return false;
    }
    const text = (await readCapped(r, this.limits.errorBodyMaxBytes, 'the tag list').catch(() => undefined))?.toString('utf8');
    try {
      const tags = (JSON.parse(text ?? '') as { tags?: unknown }).tags;
      return !Array.isArray(tags) || tags.length > 0;
    } catch {
      return true;
    }
  }

  // ─────────────── manifests ───────────────

  /** At most the manifest cap (4 MiB, as containerd), or `maxBytes` when a descriptor declared the size. */
  async getManifest(reference: string, accept: string[], maxBytes = this.limits.manifestMaxBytes): Promise<{ bytes: Buffer; contentType: string }> {
    const r = await this.send({ method: 'GET', url: `manifests/${reference}`, headers: { accept: accept.join(', ') }, expect: [200] });
    const bytes = await readCapped(r, Math.min(maxBytes, this.limits.manifestMaxBytes), `the manifest ${reference}`);
    return { bytes, contentType: r.res.headers.get('content-type') ?? '' };
  }

  async putManifest(reference: string, bytes: Buffer, mediaType: string): Promise<void> {
    const r = await this.send({ method: 'PUT', url: `manifests/${reference}`, headers: { 'content-type': mediaType }, body: () => bytes, expect: [201] });
    await discard(r);
  }

  // ─────────────── transport ───────────────

  /** One request with retries; the body factory is called again for each try. */
  private send(opts: SendOptions): Promise<HttpResponse> {
    return this.withRetries(() => this.attempt(opts));
  }

  private async withRetries<T>(fn: () => Promise<T>): Promise<T> {
    const tries = this.opts.tries ?? 4;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof RetryableError) || attempt >= tries) throw this.finalError(err, attempt);
        await sleep((this.opts.backoffMs ?? 250) * 2 ** (attempt - 1), undefined, { signal: this.opts.signal });
      }
    }
  }

  private finalError(err: unknown, attempts: number): unknown {
    if (!(err instanceof RetryableError)) return err;
    return new NixdockError('REGISTRY', `${this.target.registry} kept failing: ${err.message}`, {
      found: `${attempts} attempt${attempts === 1 ? '' : 's'}`,
      hint: 'The registry or the connection to it is having trouble; try again later. A partial upload is completed by the next push.',
    });
  }

  private async attempt(opts: SendOptions): Promise<HttpResponse> {
    await this.ensureAuth();
    const url = /^https?:\/\//.test(opts.url) ? opts.url : `${this.target.baseUrl}/v2/${this.target.repository}/${opts.url}`;
    let r: HttpResponse;
    try {
      r = await httpRequest(
        { method: opts.method, url, headers: opts.headers, body: opts.body?.(), phase: opts.phase ?? 'document', signal: this.opts.signal, ...this.credentialHeader() },
        this.limits,
      );
    } catch (err) {
      throw this.networkError(err);
    }
    if (opts.expect.includes(r.res.status)) return r;
    throw await this.responseError(opts.method, r);
  }

  /** The Authorization header, bound to the registry's own origin (see httpRequest). */
  private credentialHeader(): { authorization?: { origin: string; header: string } } {
    return this.authorization ? { authorization: { origin: this.origin, header: this.authorization } } : {};
  }

  private networkError(err: unknown): Error {
    if (err instanceof NixdockError) return err;
    const e = err as Error & { cause?: NodeJS.ErrnoException };
    if (e.name === 'AbortError' || this.opts.signal?.aborted) return new NixdockError('ABORTED', 'The registry operation was stopped', { cause: err });
    const code = e.cause?.code ?? '';
    if (RETRYABLE_NET.has(code) || e.cause?.message?.includes('other side closed')) {
      return new RetryableError(`connection problem (${code || e.cause?.message})`);
    }
    return new NixdockError('REGISTRY', `Could not reach ${this.target.registry}: ${e.cause?.message ?? e.message}`, {
      found: this.target.baseUrl,
      hint: this.target.baseUrl.startsWith('https:')
        ? 'Check the registry address. A registry that only speaks plain HTTP needs --insecure.'
        : 'Check the registry address and that it is running.',
      cause: err,
    });
  }

  private async responseError(method: string, r: HttpResponse): Promise<Error> {
    const { res } = r;
    const detail = registryMessage(await readSome(r, this.limits.errorBodyMaxBytes));
    if (res.status >= 500 || res.status === 429) return new RetryableError(`HTTP ${res.status}${detail ? ` (${detail})` : ''}`);
    if (res.status === 401 || res.status === 403) return authRejected(this.target.registry, res.status, this.credentials, detail);
    return new NixdockError('REGISTRY', `${this.target.registry} refused ${method} ${clean(r.url.pathname)} (HTTP ${res.status})${detail ? `: ${detail}` : ''}`, {
      found: `HTTP ${res.status}`,
      hint: res.status === 404 ? 'Check the repository name and that the image exists.' : undefined,
    });
  }

  /**
   * The upload URL a response names, relative to the request's URL. It may be on another host
   * (storage behind the registry): then it gets no credentials (httpRequest); https → http is refused.
   */
  private resolveLocation(r: HttpResponse, base?: string): string {
    const location = r.res.headers.get('location');
    if (!location) throw new NixdockError('REGISTRY', `${this.target.registry} opened an upload without saying where (no Location header)`);
    return checkedNextUrl(new URL(base ?? r.url), location).toString();
  }

  // ─────────────── auth ───────────────

  private ensureAuth(): Promise<void> {
    this.authReady ??= this.authenticate();
    return this.authReady;
  }

  /** Asks /v2/ once; a 401 names the scheme, and the answer to it is kept for every later request. */
  private async authenticate(): Promise<void> {
    const ping = await this.ping();
    if (ping.status !== 401) return;
    const challenge = parseChallenge(ping.headers.get('www-authenticate'));
    const { registry, repository } = this.target;
    this.credentials = findCredentials(registry, repository, this.opts.auth);
    if (challenge?.scheme === 'bearer') {
      const scopes = [
        `repository:${repository}:${this.opts.actions.join(',')}`,
        ...(this.opts.mountFrom ?? []).map((from) => `repository:${from}:pull`),
      ];
      const token = await fetchBearerToken(challenge, scopes, this.credentials, this.target, this.limits, this.opts.signal);
      this.authorization = `Bearer ${token}`;
      return;
    }
    if (!this.credentials) throw authRejected(registry, 401, undefined);
    this.authorization = basicHeader(this.credentials);
    const check = await this.ping();
    if (check.status === 401 || check.status === 403) throw authRejected(registry, check.status, this.credentials);
  }

  private async ping(): Promise<Response> {
    return this.withRetries(async () => {
      let r: HttpResponse;
      try {
        r = await httpRequest({ url: `${this.target.baseUrl}/v2/`, phase: 'document', signal: this.opts.signal, ...this.credentialHeader() }, this.limits);
      } catch (err) {
        throw this.networkError(err);
      }
      await discard(r);
      if (r.res.status >= 500) throw new RetryableError(`HTTP ${r.res.status}`);
      return r.res;
    });
  }
}

/** The first message of a registry's `{"errors":[{code,message,detail}]}` body, cleaned and cut to 200 characters. */
function registryMessage(text: string): string | undefined {
  try {
    const first = (JSON.parse(text) as { errors?: Array<{ code?: unknown; message?: unknown }> }).errors?.[0];
    const parts = [first?.code, first?.message].filter((p): p is string => typeof p === 'string' && p !== '');
    if (parts.length > 0) return clean(parts.join(': '));
  } catch {
    // not JSON (or cut short by the cap): fall through to the raw text
  }
  return clean(text) || undefined;
}

function withDigest(location: string, digest: Digest): string {
  const url = new URL(location);
  url.searchParams.set('digest', digest);
  return url.toString();
}

/** Passes the stream through, reporting bytes sent so far (a listener would start the flow too early). */
function counted(stream: Readable, onProgress?: (bytes: number) => void): Readable {
  if (!onProgress) return stream;
  return Readable.from(
    (async function* () {
      let sent = 0;
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        sent += chunk.length;
        onProgress(sent);
        yield chunk;
      }
    })(),
    { objectMode: false },
  );
}
