import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { register } from '../../src/commands/schema.js';
import { specFileSchema, specJsonSchema } from '../../src/config/schema.js';

type Json = Record<string, unknown>;

/** A small JSON Schema checker for the keywords the spec schema uses; returns the paths that fail. */
function check(schema: Json, value: unknown, root: Json, path = '$'): string[] {
  if (typeof schema.$ref === 'string') return check((root.$defs as Record<string, Json>)[schema.$ref.replace('#/$defs/', '')]!, value, root, path);
  if (Array.isArray(schema.anyOf)) {
    return (schema.anyOf as Json[]).some((s) => check(s, value, root, path).length === 0) ? [] : [`${path}: no anyOf branch matches`];
  }
  const errors: string[] = [];
  const type = schema.type as string | undefined;
  const actual = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
  if (type && !(type === actual || (type === 'integer' && Number.isInteger(value)) || (type === 'number' && actual === 'number'))) return [`${path}: not ${type}`];
  if (schema.enum && !(schema.enum as unknown[]).includes(value)) errors.push(`${path}: not in enum`);
  if (typeof value === 'string') {
    if (typeof schema.minLength === 'number' && value.length < schema.minLength) errors.push(`${path}: too short`);
    if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern).test(value)) errors.push(`${path}: pattern`);
  }
  if (typeof value === 'number') {
    if (typeof schema.minimum === 'number' && value < schema.minimum) errors.push(`${path}: below minimum`);
    if (typeof schema.maximum === 'number' && value > schema.maximum) errors.push(`${path}: above maximum`);
  }
  if (Array.isArray(value) && schema.items) value.forEach((v, i) => errors.push(...check(schema.items as Json, v, root, `${path}[${i}]`)));
  if (actual === 'object') {
    const object = value as Json;
    const properties = (schema.properties ?? {}) as Record<string, Json>;
    for (const key of (schema.required ?? []) as string[]) if (!(key in object)) errors.push(`${path}.${key}: required`);
    for (const [key, v] of Object.entries(object)) {
      if (properties[key]) errors.push(...check(properties[key]!, v, root, `${path}.${key}`));
      else if (schema.additionalProperties === false) errors.push(`${path}.${key}: not allowed`);
      else if (typeof schema.additionalProperties === 'object') errors.push(...check(schema.additionalProperties as Json, v, root, `${path}.${key}`));
      if (schema.propertyNames) errors.push(...check(schema.propertyNames as Json, key, root, `${path}.${key}(name)`));
    }
  }
  return errors;
}

const GOOD: unknown[] = [
  { name: 'hello', contents: ['/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello', { nix: './default.nix', attr: 'app' }, { dir: './root' }], config: { Cmd: ['/bin/hello'], Env: { A: '1' }, ExposedPorts: ['8080/tcp'] } },
  { $schema: './spec.schema.json', images: [{ name: 'a', maxLayers: 2 }, { name: 'b', architecture: 'arm64', variant: 'v8', fromImage: { oci: '../base', tag: 'v1' } }] },
  [{ name: 'a', created: 'now', compression: 'zstd', load: ['podman'] }, { name: 'b', config: { Volumes: { '/data': {} }, Healthcheck: { Test: ['NONE'] } } }],
];
const BAD: unknown[] = [
  { name: 'a', maxLayer: 3 },
  { name: 'a', maxLayers: 128 },
  { name: 'a', architecture: 'arm64v8' },
  { name: 'a', config: { Cmd: '/bin/sh' } },
  { name: 'a', contents: [{ nix: './x.nix', atr: 'y' }] },
  { images: [{ name: 'a' }], extra: true },
  { tag: 'no-name' },
  [{ name: 'a', uid: -1 }],
];

test('the JSON Schema accepts the spec forms and refuses typos and out-of-range values, like the zod schema', () => {
  const schema = specJsonSchema();
  for (const example of GOOD) {
    assert.deepEqual(check(schema, example, schema), [], JSON.stringify(example));
    assert.ok(specFileSchema.safeParse(example).success);
  }
  for (const example of BAD) {
    assert.notDeepEqual(check(schema, example, schema), [], JSON.stringify(example));
    assert.ok(!specFileSchema.safeParse(example).success);
  }
});

test('every object in the JSON Schema is closed and every field is described', () => {
  const schema = specJsonSchema();
  const image = (schema.$defs as Record<string, Json>).ImageSpec!;
  assert.equal(image.additionalProperties, false);
  assert.deepEqual(image.required, ['name']);
  for (const key of ['name', 'tag', 'contents', 'config', 'maxLayers', 'architecture', 'variant', 'fromImage', 'created', 'mtime', 'uid', 'gid', 'uname', 'gname', 'extraCommands', 'includeStorePaths', 'push', 'load', 'watch', 'compression', 'nixpkgsConf']) {
    assert.ok((image.properties as Json)[key], key);
  }
  const maxLayers = (image.properties as Record<string, Json>).maxLayers!;
  assert.deepEqual([maxLayers.type, maxLayers.minimum, maxLayers.maximum], ['integer', 2, 127]);
  const architecture = (image.properties as Record<string, Json>).architecture!;
  assert.deepEqual([...(architecture.enum as string[])].sort(), ['386', 'amd64', 'arm', 'arm64', 'ppc64le', 'riscv64', 's390x']);
  const undescribed: string[] = [];
  const visit = (node: unknown, path: string): void => {
    if (Array.isArray(node)) return node.forEach((n, i) => visit(n, `${path}[${i}]`));
    if (!node || typeof node !== 'object') return;
    const object = node as Json;
    if (object.type === 'object' && object.properties) {
      assert.equal(object.additionalProperties, false, `${path} is open`);
      for (const [key, prop] of Object.entries(object.properties as Record<string, Json>)) if (!prop.description) undescribed.push(`${path}.${key}`);
    }
    for (const [key, child] of Object.entries(object)) visit(child, `${path}.${key}`);
  };
  visit(schema, '$');
  assert.deepEqual(undescribed, []);
});

test('`nixdock schema --out FILE` writes the schema atomically; without --out it prints it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nixdock-schema-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'spec.schema.json');
  const program = new Command('nixdock').exitOverride();
  register(program);
  const stderr = t.mock.method(process.stderr, 'write', () => true);
  await program.parseAsync(['node', 'nixdock', 'schema', '--out', file]);
  assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), specJsonSchema());
  assert.deepEqual(readdirSync(dir), ['spec.schema.json']);
  assert.match(String(stderr.mock.calls[0]?.arguments[0]), /wrote .*spec\.schema\.json/);

  const printed: string[] = [];
  t.mock.method(process.stdout, 'write', (chunk: string) => printed.push(chunk));
  await program.parseAsync(['node', 'nixdock', 'schema']);
  assert.deepEqual(JSON.parse(printed.join('')), specJsonSchema());
});
