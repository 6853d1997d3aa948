/**
 * A hostile registry for tests: a plain node http server on 127.0.0.1 whose every answer the test
 * writes. It records each request (method, path, headers) so a test can assert what nixdock sent
 * where (e.g. that no Authorization header reached another origin).
 */
import http from 'node:http';
import type net from 'node:net';
import { sha256 } from '../helpers/bytes.js';

export interface SeenRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  bodyBytes: number;
}

export type Handler = (req: SeenRequest, res: http.ServerResponse) => void | Promise<void>;

export interface FakeServer {
  /** `127.0.0.1:PORT` */
  host: string;
  url: string;
  requests: SeenRequest[];
  stop(): Promise<void>;
}

export async function fakeServer(handler: Handler): Promise<FakeServer> {
  const requests: SeenRequest[] = [];
  const server = http.createServer(async (req, res) => {
    let bodyBytes = 0;
    for await (const chunk of req) bodyBytes += (chunk as Buffer).length;
    const seen: SeenRequest = { method: req.method!, path: req.url!, headers: req.headers, bodyBytes };
    requests.push(seen);
    try {
      await handler(seen, res);
    } catch {
      res.destroy();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    requests,
    stop: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export function json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const bytes = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(bytes.length), ...headers }).end(bytes);
}

/** A minimal valid single-layer image (config + one uncompressed layer) as a registry would serve it. */
export function tinyImage(): { manifest: Buffer; manifestDigest: `sha256:${string}`; config: Buffer; layer: Buffer; blobs: Map<string, Buffer> } {
  const layer = Buffer.alloc(1024);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
    }),
  );
  const blobs = new Map([
    [sha256(config), config],
    [sha256(layer), layer],
  ]);
  return { manifest, manifestDigest: sha256(manifest), config, layer, blobs };
}
