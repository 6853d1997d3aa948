import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NixdockError } from '../src/errors.js';
import { formatReference, parseReference, registryOf, validateRepositoryName, validateTag } from '../src/reference.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

const VALID: Array<[string, { registry?: string; repository: string; tag?: string; digest?: string }]> = [
  ['hello', { repository: 'hello' }],
  ['library/hello:1.0', { repository: 'library/hello', tag: '1.0' }],
  ['ghcr.io/me/app:v2', { registry: 'ghcr.io', repository: 'me/app', tag: 'v2' }],
  ['localhost:5000/app', { registry: 'localhost:5000', repository: 'app' }],
  ['localhost/app:latest', { registry: 'localhost', repository: 'app', tag: 'latest' }],
  ['127.0.0.1:5000/a/b/c:x_Y.z-1', { registry: '127.0.0.1:5000', repository: 'a/b/c', tag: 'x_Y.z-1' }],
  [`alpine@${DIGEST}`, { repository: 'alpine', digest: DIGEST }],
  [`docker.io/library/alpine:3.19@${DIGEST}`, { registry: 'docker.io', repository: 'library/alpine', tag: '3.19', digest: DIGEST }],
  ['my-app__x_y/z---w.v:_t', { repository: 'my-app__x_y/z---w.v', tag: '_t' }],
  ['my.app/x', { registry: 'my.app', repository: 'x' }],
  ['[::1]:5000/app', { registry: '[::1]:5000', repository: 'app' }],
  ['Registry/app', { registry: 'Registry', repository: 'app' }],
];

const INVALID: Array<[string, RegExp]> = [
  ['Hello', /must be lowercase/],
  ['hello:', /tag is empty/],
  ['hello:-x', /tag `-x`/],
  ['hello:.x', /tag `.x`/],
  [`hello:${'a'.repeat(129)}`, /129 characters/],
  ['hello world', /path component `hello world`/],
  ['a//b', /empty path component/],
  ['/hello', /empty path component/],
  ['-app', /path component `-app`/],
  ['app-', /path component `app-`/],
  ['a...b', /path component `a...b`/],
  ['localhost:abc/app', /port `abc`/],
  ['bad_host.io/app', /registry host `bad_host.io`/],
  ['app@sha256:abc', /64 lowercase hex/],
  [`app@sha512:${'a'.repeat(128)}`, /only sha256/],
  ['', /repository name is empty/],
  [`${'a'.repeat(256)}`, /at most 255/],
];

test('valid references parse into their parts and format back unchanged', () => {
  for (const [ref, expected] of VALID) {
    const parsed = parseReference(ref);
    assert.deepEqual(parsed, expected, ref);
    assert.equal(formatReference(parsed), ref);
  }
});

test('invalid references throw REFERENCE_INVALID naming the wrong part', () => {
  for (const [ref, problem] of INVALID) {
    assert.throws(
      () => parseReference(ref),
      (err: unknown) => {
        assert.ok(err instanceof NixdockError, ref);
        assert.equal(err.code, 'REFERENCE_INVALID');
        assert.match(err.message, problem, ref);
        assert.equal(err.found, ref);
        assert.ok(err.expected && err.hint);
        return true;
      },
    );
  }
});

test('registryOf defaults to Docker Hub', () => {
  assert.equal(registryOf(parseReference('hello')), 'docker.io');
  assert.equal(registryOf(parseReference('me/hello')), 'docker.io');
  assert.equal(registryOf(parseReference('localhost:5000/hello')), 'localhost:5000');
  assert.equal(registryOf(parseReference('quay.io/me/hello')), 'quay.io');
});

test('validateTag and validateRepositoryName return text only for bad input', () => {
  assert.equal(validateTag('v1.2.3'), undefined);
  assert.equal(validateTag('a'.repeat(128)), undefined);
  assert.match(validateTag('a'.repeat(129))!, /at most 128/);
  assert.match(validateTag('x/y')!, /may only hold/);
  assert.equal(validateRepositoryName('team/app'), undefined);
  assert.match(validateRepositoryName('team/App')!, /lowercase/);
});
