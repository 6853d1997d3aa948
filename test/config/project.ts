/** Temporary project directories with real config and spec files, removed after the test. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { NixdockError, type ErrorCode } from '../../src/errors.js';

/** Files by relative path; objects are written as JSON. A package.json stops the upward config search. */
export function tempProject(t: TestContext, files: Record<string, string | object>): string {
  const dir = mkdtempSync(join(tmpdir(), 'nixdock-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const all = { 'package.json': { name: 'fixture', private: true, type: 'module' }, ...files };
  for (const [path, content] of Object.entries(all)) {
    const file = join(dir, path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  }
  return dir;
}

export interface Expected {
  code: ErrorCode;
  file?: string;
  field?: string;
  message?: RegExp;
  hint?: RegExp;
  expected?: RegExp;
  found?: RegExp;
}

/** Asserts that `promise` rejects with a NixdockError matching every given part. */
export async function rejectsWith(promise: Promise<unknown>, want: Expected): Promise<NixdockError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof NixdockError, `expected a NixdockError, got ${String(caught)}`);
  assert.equal(caught.code, want.code, caught.message);
  if (want.file !== undefined) assert.equal(caught.location?.file, want.file);
  if (want.field !== undefined) assert.equal(caught.location?.field, want.field);
  if (want.message) assert.match(caught.message, want.message);
  if (want.hint) assert.match(caught.hint ?? '', want.hint);
  if (want.expected) assert.match(caught.expected ?? '', want.expected);
  if (want.found) assert.match(caught.found ?? '', want.found);
  return caught;
}
