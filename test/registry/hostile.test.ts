/**
 * nixdock's registry client against a registry that lies, stalls and redirects: credentials stay
 * with their origin, every descriptor is checked before use, every response is bounded.
 * The registry is a node http server whose answers each test writes (no tools needed).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { NixdockError } from '../../src/errors.js';
import { fetchBearerToken } from '../../src/registry/auth.js';
import { checkedNextUrl, REGISTRY_LIMITS } from '../../src/registry/http.js';
import { pullImage } from '../../src/registry/pull.js';
import { pushImage } from '../../src/registry/push.js';
import type { Image, ImageConfigFile, Layer } from '../../src/types.js';
import { fakeServer, json, tinyImage, type FakeServer, type SeenRequest } from './fake-registry.js';
import { sha256 } from '../helpers/bytes.js';

const SECRET = 'hunter2-do-not-leak';
const withCreds = { authFiles: [], env: {}, username: 'alice', password: SECRET };
const anonymous = { authFiles: [], env: {} };
const fast = { tries: 1, backoffMs: 1 };

let work: string;
before(() => {
  work = mkdtempSync(join(tmpdir(), 'nixdock-hostile-'));
});
after(() => rmSync(work, { recursive: true, force: true }));
const freshCache = () => mkdtempSync(join(work, 'cache-'));

/** Basic auth required on /v2/ (so the client has credentials to leak), everything else by `route`. */
function basicRegistry(route: (req: SeenRequest, res: import('node:http').ServerResponse) => void | Promise<void>) {
  return fakeServer((req, res) => {
    if (req.path === '/v2/') {
      if (req.headers.authorization) return json(res, 200, {});
      return json(res, 401, {}, { 'www-authenticate': 'Basic realm="fake"' });
    }
    return route(req, res);
  });
}

function leaked(server: FakeServer): boolean {
  return server.requests.some((r) => JSON.stringify(r.headers).includes(Buffer.from(`alice:${SECRET}`).toString('base64')) || r.headers.authorization !== undefined);
}

function memoryImage(): Image {
  const bytes = Buffer.alloc(2048, 7);
  const diffId = sha256(bytes);
  const layer: Layer = {
    source: { kind: 'store', key: diffId.slice(7), storePaths: [], description: 'test layer', size: async () => bytes.length, open: () => Readable.from([bytes]) },
    diffId,
    size: bytes.length,
    built: true,
    compressed: {},
  } as Layer;
  const config: ImageConfigFile = { created: '1970-01-01T00:00:01Z', architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [diffId] }, history: [] };
  const configBytes = Buffer.from(JSON.stringify(config));
  return { name: 'img', tag: 'latest', layers: [layer], config, configBytes, configDigest: sha256(configBytes) };
}

describe('1. credentials stay with their origin', () => {
  test('an upload Location on another port gets the bytes but not the Authorization header', async () => {
    const other = await fakeServer((_req, res) => {
      res.writeHead(201, { location: '/done' }).end();
    });
    const registry = await basicRegistry((req, res) => {
      if (req.method === 'HEAD') return void res.writeHead(404).end();
      if (req.method === 'POST') return void res.writeHead(202, { location: `${other.url}/upload/1` }).end();
      if (req.method === 'PUT' && req.path.includes('/manifests/')) return void res.writeHead(201).end();
      res.writeHead(500).end();
    });
    try {
      await pushImage({ image: memoryImage(), codec: 'none' }, `${registry.host}/img:1`, { auth: withCreds, ...fast });
      assert.ok(other.requests.some((r) => r.method === 'PUT' && r.bodyBytes > 0), 'the blob was uploaded to the Location');
      assert.equal(leaked(other), false, 'no credentials reached the other origin');
      assert.ok(registry.requests.some((r) => r.method === 'PUT' && r.headers.authorization), 'the registry itself still gets them');
    } finally {
      await registry.stop();
      await other.stop();
    }
  });

  test('a blob redirect to another origin is followed without credentials', async () => {
    const image = tinyImage();
    const cdn = await fakeServer((req, res) => {
      const blob = image.blobs.get(req.path.slice(1));
      if (!blob) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-length': String(blob.length) }).end(blob);
    });
    const registry = await basicRegistry((req, res) => {
      if (req.path.includes('/manifests/')) return void res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(image.manifest);
      const digest = req.path.split('/blobs/')[1];
      res.writeHead(307, { location: `${cdn.url}/${digest}` }).end();
    });
    try {
      await pullImage(`${registry.host}/img@${image.manifestDigest}`, { cacheDir: freshCache(), auth: withCreds, ...fast });
      assert.equal(cdn.requests.length, 2, 'config and layer came from the redirect target');
      assert.equal(leaked(cdn), false);
    } finally {
      await registry.stop();
      await cdn.stop();
    }
  });

  test('https → http is refused for redirects and upload Locations alike', () => {
    assert.throws(() => checkedNextUrl(new URL('https://registry.example/v2/x/blobs/uploads/'), 'http://registry.example/upload/1'), /from https to plain http/);
    assert.throws(() => checkedNextUrl(new URL('https://registry.example/v2/'), 'file:///etc/passwd'), /scheme file:/);
    assert.equal(checkedNextUrl(new URL('https://registry.example/v2/x/'), '/upload/1').toString(), 'https://registry.example/upload/1');
    assert.equal(checkedNextUrl(new URL('http://127.0.0.1:5000/v2/'), 'https://storage.example/u').host, 'storage.example');
  });

  test('a bearer realm on plain http is refused for an https registry before any request', async () => {
    const realm = await fakeServer((_req, res) => json(res, 200, { token: 'abc' }));
    try {
      const challenge = { scheme: 'bearer' as const, params: { realm: `${realm.url}/token` } };
      const creds = { username: 'alice', password: SECRET, origin: 'test' };
      await assert.rejects(fetchBearerToken(challenge, ['repository:x:pull'], creds, { registry: 'registry.example', baseUrl: 'https://registry.example' }, REGISTRY_LIMITS), (err: NixdockError) => err.code === 'REGISTRY_AUTH' && /plain http/.test(err.message));
      assert.equal(realm.requests.length, 0);
      // The same realm for a plain-http (loopback) registry is fine.
      assert.equal(await fetchBearerToken(challenge, [], creds, { registry: realm.host, baseUrl: realm.url }, REGISTRY_LIMITS), 'abc');
    } finally {
      await realm.stop();
    }
  });

  test('a lowercase "bearer" challenge is understood', async () => {
    const realm = await fakeServer((_req, res) => json(res, 200, { access_token: 'tok' }));
    const image = tinyImage();
    const registry = await fakeServer((req, res) => {
      if (req.headers.authorization !== 'Bearer tok') return json(res, 401, {}, { 'www-authenticate': `bearer realm="${realm.url}/token",service="fake"` });
      if (req.path.includes('/manifests/')) return void res.writeHead(200).end(image.manifest);
      const blob = image.blobs.get(req.path.split('/blobs/')[1]!);
      res.writeHead(blob ? 200 : 404).end(blob);
    });
    try {
      const pulled = await pullImage(`${registry.host}/img@${image.manifestDigest}`, { cacheDir: freshCache(), auth: anonymous, ...fast });
      assert.equal(pulled.manifestDigest, image.manifestDigest);
    } finally {
      await registry.stop();
      await realm.stop();
    }
  });
});

/** A registry serving `manifest` for any reference and the blobs it has; a digest-pinned ref to it. */
async function servingManifest(doc: unknown, blobs = new Map<string, Buffer>()) {
  const manifest = Buffer.from(JSON.stringify(doc));
  const registry = await fakeServer((req, res) => {
    if (req.path === '/v2/') return json(res, 200, {});
    if (req.path.includes('/manifests/')) return void res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(manifest);
    const blob = blobs.get(decodeURIComponent(req.path.split('/blobs/')[1] ?? ''));
    res.writeHead(blob ? 200 : 404).end(blob);
  });
  return { registry, ref: `${registry.host}/img@${sha256(manifest)}` };
}

describe('2. descriptors are checked before use', () => {
  const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256('x'), size: 1 };
  const config = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256('{}'), size: 2 };
  const cases: Array<[string, unknown, RegExp]> = [
    ['a config digest that climbs out of blobs/', { config: { ...config, digest: 'sha256:../../../../etc/passwd' }, layers: [layer] }, /config: digest/],
    ['a layer digest in upper case', { config, layers: [{ ...layer, digest: sha256('x').toUpperCase() }] }, /layers\[0\]: digest/],
    ['a negative size', { config, layers: [{ ...layer, size: -1 }] }, /layers\[0\]: size/],
    ['a size past 2^53', { config, layers: [{ ...layer, size: 2 ** 60 }] }, /layers\[0\]: size/],
    ['a fractional size', { config: { ...config, size: 0.5 }, layers: [layer] }, /config: size/],
    ['a media type with a path in it', { config, layers: [{ ...layer, mediaType: '../../x' }] }, /layers\[0\]: mediaType/],
    ['layers that are not a list', { config, layers: { 0: layer } }, /no layers list/],
  ];
  for (const [name, doc, message] of cases) {
    test(`${name} is refused before anything is fetched or read`, async () => {
      const { registry, ref } = await servingManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', ...(doc as object) });
      try {
        const cacheDir = freshCache();
        await assert.rejects(pullImage(ref, { cacheDir, auth: anonymous, ...fast }), (err: NixdockError) => {
          assert.equal(err.code, 'INPUT_INVALID');
          assert.match(err.message, message);
          assert.doesNotMatch(err.message + (err.found ?? ''), /root:x:0/);
          return true;
        });
        assert.deepEqual(registry.requests.filter((r) => r.path.includes('/blobs/')), [], 'no blob was asked for');
        assert.equal(existsSync(join(cacheDir, 'pulled', 'blobs')), false, 'nothing was cached');
      } finally {
        await registry.stop();
      }
    });
  }

  test('an index entry with a hostile digest is refused', async () => {
    const index = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: 'sha256:../../x', size: 10, platform: { os: 'linux', architecture: 'amd64' } }] };
    const { registry, ref } = await servingManifest(index);
    try {
      await assert.rejects(pullImage(ref, { cacheDir: freshCache(), auth: anonymous, ...fast }), /manifests\[0\]: digest/);
    } finally {
      await registry.stop();
    }
  });

  test('a manifest that is not JSON is REGISTRY, not a SyntaxError', async () => {
    const bytes = Buffer.from('<html>login</html>');
    const registry = await fakeServer((req, res) => {
      if (req.path === '/v2/') return json(res, 200, {});
      res.writeHead(200).end(bytes);
    });
    try {
      await assert.rejects(pullImage(`${registry.host}/img@${sha256(bytes)}`, { cacheDir: freshCache(), auth: anonymous, ...fast }), (err: NixdockError) => err.code === 'REGISTRY' && /not a JSON object/.test(err.message));
    } finally {
      await registry.stop();
    }
  });
});

describe('3. registry responses are bounded', () => {
  /** Writes `chunk` every `everyMs` until the client goes away. */
  function endless(res: import('node:http').ServerResponse, chunk: Buffer, everyMs = 0, headers: Record<string, string> = {}) {
    res.writeHead(200, headers);
    const timer = setInterval(() => {
      if (res.destroyed || res.writableEnded) return clearInterval(timer);
      res.write(chunk);
    }, everyMs);
    res.on('close', () => clearInterval(timer));
  }

  test('an endless manifest stops at the 4 MiB cap', async () => {
    const registry = await fakeServer((req, res) => {
      if (req.path === '/v2/') return json(res, 200, {});
      endless(res, Buffer.alloc(256 * 1024, 0x20));
    });
    try {
      const before = process.memoryUsage().rss;
      await assert.rejects(pullImage(`${registry.host}/img:latest`, { cacheDir: freshCache(), allowTag: true, auth: anonymous, ...fast }), (err: NixdockError) => {
        assert.equal(err.code, 'REGISTRY');
        assert.match(err.message, /the manifest latest larger than nixdock accepts/);
        assert.equal(err.expected, `at most ${4 * 1024 * 1024} bytes`);
        return true;
      });
      assert.ok(process.memoryUsage().rss - before < 200 * 1024 * 1024);
    } finally {
      await registry.stop();
    }
  });

  test('an endless token answer stops at the 1 MiB cap', async () => {
    const realm = await fakeServer((_req, res) => endless(res, Buffer.alloc(64 * 1024, 0x20)));
    const registry = await fakeServer((_req, res) => json(res, 401, {}, { 'www-authenticate': `Bearer realm="${realm.url}/token"` }));
    try {
      await assert.rejects(pullImage(`${registry.host}/img@${sha256('x')}`, { cacheDir: freshCache(), auth: anonymous, ...fast }), (err: NixdockError) => {
        assert.equal(err.code, 'REGISTRY');
        assert.match(err.message, /a token larger than nixdock accepts/);
        assert.equal(err.expected, `at most ${1024 * 1024} bytes`);
        return true;
      });
    } finally {
      await registry.stop();
      await realm.stop();
    }
  });

  test('a redirect loop stops after 5 redirects', async () => {
    const registry = await fakeServer((req, res) => {
      if (req.path === '/v2/') return json(res, 200, {});
      res.writeHead(307, { location: `/loop/${Number(req.path.split('/loop/')[1] ?? 0) + 1}` }).end();
    });
    try {
      await assert.rejects(pullImage(`${registry.host}/img@${sha256('x')}`, { cacheDir: freshCache(), auth: anonymous, ...fast }), (err: NixdockError) => err.code === 'REGISTRY' && /redirected more than 5 times/.test(err.message));
      assert.equal(registry.requests.filter((r) => r.path.startsWith('/loop/')).length, 5);
    } finally {
      await registry.stop();
    }
  });

  test('a manifest whose Content-Length is over the cap is refused before reading', async () => {
    const registry = await fakeServer((req, res) => {
      if (req.path === '/v2/') return json(res, 200, {});
      endless(res, Buffer.alloc(1024), 5, { 'content-length': String(1024 ** 3) });
    });
    try {
      await assert.rejects(pullImage(`${registry.host}/img:latest`, { cacheDir: freshCache(), allowTag: true, auth: anonymous, ...fast }), (err: NixdockError) => err.found === `${1024 ** 3} bytes (Content-Length)`);
    } finally {
      await registry.stop();
    }
  });

  test('an endless blob stops at its declared size and nothing stays in staging', async () => {
    const image = tinyImage();
    const registry = await fakeServer((req, res) => {
      if (req.path === '/v2/') return json(res, 200, {});
      if (req.path.includes('/manifests/')) return void res.writeHead(200).end(image.manifest);
      if (req.path.endsWith(sha256(image.config))) return void res.writeHead(200).end(image.config);
      endless(res, Buffer.alloc(64 * 1024));
    });
    const cacheDir = freshCache();
    try {
      await assert.rejects(pullImage(`${registry.host}/img@${image.manifestDigest}`, { cacheDir, auth: anonymous, ...fast }), (err: NixdockError) => {
        assert.equal(err.code, 'REGISTRY');
        assert.match(err.message, /blob sha256:[0-9a-f]{64} larger than nixdock accepts/);
        assert.equal(err.expected, `at most ${image.layer.length} bytes`);
        return true;
      });
      const pulled = join(cacheDir, 'pulled');
      assert.deepEqual(readdirSync(pulled).filter((f) => f.startsWith('.staging')), [], 'staging removed');
      assert.equal(existsSync(join(pulled, 'blobs')), false);
    } finally {
      await registry.stop();
    }
  });

  test('a 50 MB error body is read only in part and its message cut to 200 characters', async () => {
    const registry = await fakeServer((req, res) => {
      if (req.path === '/v2/') return json(res, 200, {});
      res.writeHead(400, { 'content-type': 'application/json' });
      res.write('{"errors":[{"code":"DENIED","message":"');
      res.write('\u001b[31m' + 'A'.repeat(50 * 1024 * 1024));
      res.end('"}]}');
    });
    try {
      await assert.rejects(pullImage(`${registry.host}/img:latest`, { cacheDir: freshCache(), allowTag: true, auth: anonymous, ...fast }), (err: NixdockError) => {
        assert.equal(err.code, 'REGISTRY');
        assert.ok(err.message.length < 400, `message of ${err.message.length} characters`);
        assert.doesNotMatch(err.message, /\u001b/, 'no terminal escapes from the registry');
        return true;
      });
    } finally {
      await registry.stop();
    }
  });

  test('a registry that stops sending hits the idle timeout, and one that trickles the overall timeout', async () => {
    const image = tinyImage();
    const silent = await fakeServer((req, res) => {
      if (req.path === '/v2/') return json(res, 200, {});
      res.writeHead(200).write(image.manifest.subarray(0, 10)); // then nothing
    });
    const trickle = await fakeServer((req, res) => {
      if (req.path === '/v2/') return json(res, 200, {});
      endless(res, Buffer.from(' '), 50);
    });
    try {
      const limits = { idleTimeoutMs: 300, documentTimeoutMs: 1000 };
      const started = Date.now();
      await assert.rejects(pullImage(`${silent.host}/img@${image.manifestDigest}`, { cacheDir: freshCache(), auth: anonymous, limits, ...fast }), (err: NixdockError) => {
        assert.equal(err.code, 'REGISTRY');
        assert.match(err.message, /sent nothing for 0\.3 s/);
        assert.match(err.hint ?? '', /NIXDOCK_REGISTRY_IDLE_TIMEOUT/);
        return true;
      });
      await assert.rejects(pullImage(`${trickle.host}/img@${image.manifestDigest}`, { cacheDir: freshCache(), auth: anonymous, limits, ...fast }), (err: NixdockError) => {
        assert.match(err.message, /did not finish within 1 s/);
        assert.match(err.hint ?? '', /NIXDOCK_REGISTRY_TIMEOUT/);
        return true;
      });
      assert.ok(Date.now() - started < 10_000);
    } finally {
      await silent.stop();
      await trickle.stop();
    }
  });

  test('timeouts are read from the environment in seconds; nonsense there is refused', async () => {
    const silent = await fakeServer((_req, res) => void res.writeHead(200).write('x'));
    try {
      const env = { NIXDOCK_REGISTRY_IDLE_TIMEOUT: '0.2' };
      await assert.rejects(pullImage(`${silent.host}/img:latest`, { cacheDir: freshCache(), allowTag: true, auth: { authFiles: [], env }, ...fast }), /sent nothing for 0\.2 s/);
      await assert.rejects(pullImage(`${silent.host}/img:latest`, { cacheDir: freshCache(), allowTag: true, auth: { authFiles: [], env: { NIXDOCK_REGISTRY_TIMEOUT: 'soon' } } }), /NIXDOCK_REGISTRY_TIMEOUT is not a number of seconds/);
    } finally {
      await silent.stop();
    }
  });
});
