/**
 * What `--json` prints on stdout: the command's result with `ok: true`, or `ok: false` and the
 * error (written by the CLI's error boundary). Each command exports its own form, so scripts and
 * the tests type the output from here instead of restating it.
 */
import type { SerializedError } from '../errors.js';

export type JsonOk<T> = { ok: true } & T;

export interface JsonFailure {
  ok: false;
  error: SerializedError;
}
