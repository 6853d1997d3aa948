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

  constructor(
    readonly target: RegistryTarget,
    private readonly opts: ClientOptions,
  ) {}

  // ─────────────── blobs ───────────────

  /** Size of the blob when the repository has it, undefined when not. */
  async blobSize(digest: Digest): Promise<number | undefined> {
    const res = await this.send({ method: 'HEAD', url: `blobs/${digest}`, expect: [200, 404] });
    return res.status === 200 ? Number(res.headers.get('content-length') ?? -1) : undefined;
  }

  /** Cross-repository mount; true when the registry linked the blob without an upload. */
  async mountBlob(digest: Digest, from: string): Promise<boolean> {
    const query = new URLSearchParams({ mount: digest, from });
    const res = await this.send({ method: 'POST', url: `blobs/uploads/?${query}`, expect: [201, 202] });
    if (res.status === 202) await this.cancelUpload(res);
    return res.status === 201;
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
      });
      if (put.status === 201) return;
      await put.body?.cancel();
      await this.uploadChunked(body, onProgress);
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
      });
      location = this.resolveLocation(res);
      await res.body?.cancel();
    }
    const done = await this.attempt({ method: 'PUT', url: withDigest(location, body.digest), headers: { 'content-length': '0' }, expect: [201] });
    await done.body?.cancel();
  }

  private async startUpload(): Promise<string> {
    const res = await this.attempt({ method: 'POST', url: 'blobs/uploads/', headers: { 'content-length': '0' }, expect: [202] });
    await res.body?.cancel();
    return this.resolveLocation(res);
  }

  /** Abandons an upload session the registry opened (a mount it could not do); failures do not matter. */
  private async cancelUpload(res: Response): Promise<void> {
    await res.body?.cancel();
    const location = res.headers.get('location');
    if (!location) return;
    const done = await this.attempt({ method: 'DELETE', url: this.resolveLocation(res), expect: [204, 404] }).catch(() => undefined);
    await done?.body?.cancel();
  }

  /** The blob's bytes (unverified: the caller hashes them). */
  async openBlob(digest: Digest): Promise<Readable> {
    const res = await this.send({ method: 'GET', url: `blobs/${digest}`, expect: [200] });
    if (!res.body) throw new NixdockError('REGISTRY', `${this.target.registry} sent no bytes for blob ${digest}`);
    return Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
  }

  // ─────────────── manifests ───────────────

  async getManifest(reference: string, accept: string[]): Promise<{ bytes: Buffer; contentType: string }> {
    const res = await this.send({ method: 'GET', url: `manifests/${reference}`, headers: { accept: accept.join(', ') }, expect: [200] });
    return { bytes: Buffer.from(await res.arrayBuffer()), contentType: res.headers.get('content-type') ?? '' };
  }

  async putManifest(reference: string, bytes: Buffer, mediaType: string): Promise<void> {
    const res = await this.send({ method: 'PUT', url: `manifests/${reference}`, headers: { 'content-type': mediaType }, body: () => bytes, expect: [201] });
    await res.body?.cancel();
  }

  // ─────────────── transport ───────────────

  /** One request with retries; the body factory is called again for each try. */
  private send(opts: SendOptions): Promise<Response> {
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

  private async attempt(opts: SendOptions): Promise<Response> {
    await this.ensureAuth();
    const url = /^https?:\/\//.test(opts.url) ? opts.url : `${this.target.baseUrl}/v2/${this.target.repository}/${opts.url}`;
    const headers: Record<string, string> = { ...opts.headers };
    if (this.authorization) headers.authorization = this.authorization;
    const body = opts.body?.();
    let res: Response;
    try {
      res = await fetch(url, {
        method: opts.method,
        headers,
        body: body as RequestInit['body'],
        signal: this.opts.signal,
        ...(body instanceof Readable && { duplex: 'half' }),
      } as RequestInit);
    } catch (err) {
      if (body instanceof Readable) body.destroy();
      throw this.networkError(err);
    }
    if (opts.expect.includes(res.status)) return res;
    throw await this.responseError(opts.method, res);
  }

  private networkError(err: unknown): Error {
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

  private async responseError(method: string, res: Response): Promise<Error> {
    const text = await res.text().catch(() => '');
    const detail = registryMessage(text);
    if (res.status >= 500 || res.status === 429) return new RetryableError(`HTTP ${res.status}${detail ? ` (${detail})` : ''}`);
    if (res.status === 401 || res.status === 403) return authRejected(this.target.registry, res.status, this.credentials, detail);
    return new NixdockError('REGISTRY', `${this.target.registry} refused ${method} ${new URL(res.url || this.target.baseUrl).pathname} (HTTP ${res.status})${detail ? `: ${detail}` : ''}`, {
      found: `HTTP ${res.status}`,
      hint: res.status === 404 ? 'Check the repository name and that the image exists.' : undefined,
    });
  }

  private resolveLocation(res: Response): string {
    const location = res.headers.get('location');
    if (!location) throw new NixdockError('REGISTRY', `${this.target.registry} opened an upload without saying where (no Location header)`);
    return new URL(location, this.target.baseUrl).toString();
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
      this.authorization = `Bearer ${await fetchBearerToken(challenge, scopes, this.credentials, registry, this.opts.signal)}`;
      return;
    }
    if (!this.credentials) throw authRejected(registry, 401, undefined);
    this.authorization = basicHeader(this.credentials);
    const check = await this.ping();
    if (check.status === 401 || check.status === 403) throw authRejected(registry, check.status, this.credentials);
  }

  private async ping(): Promise<Response> {
    const res = await this.withRetries(async () => {
      const headers: Record<string, string> = this.authorization ? { authorization: this.authorization } : {};
      let r: Response;
      try {
        r = await fetch(`${this.target.baseUrl}/v2/`, { headers, signal: this.opts.signal });
      } catch (err) {
        throw this.networkError(err);
      }
      if (r.status >= 500) throw new RetryableError(`HTTP ${r.status}`);
      return r;
    });
    await res.body?.cancel();
    return res;
  }
}

/** The first message of a registry's `{"errors":[{code,message,detail}]}` body. */
function registryMessage(text: string): string | undefined {
  try {
    const first = (JSON.parse(text) as { errors?: Array<{ code?: string; message?: string }> }).errors?.[0];
    if (first) return [first.code, first.message].filter(Boolean).join(': ');
  } catch {
    // not JSON: fall through to the raw text
  }
  const trimmed = text.trim();
  return trimmed ? trimmed.slice(0, 200) : undefined;
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
