/** Digests and whole-stream reads, as tests compute them independently of the code under test. */
import { createHash } from 'node:crypto';
import type { Digest } from '../../src/types.js';

/** `sha256:<hex>`, the OCI digest of these bytes. */
export function sha256(data: string | Buffer): Digest {
  return `sha256:${sha256Hex(data)}`;
}

/** The bare hex SHA-256 (blob file names, content fingerprints). */
export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Reads a stream to its end. */
export async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
