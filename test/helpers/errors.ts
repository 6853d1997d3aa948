/** Assertions on the NixdockError a call fails with: code, location, found/expected, hint. */
import assert from 'node:assert/strict';
import { NixdockError, type ErrorCode } from '../../src/errors.js';

/** The parts of a NixdockError a test checks; each one given must match. */
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
