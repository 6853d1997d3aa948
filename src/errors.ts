/**
 * One error type for every expected failure. The CLI prints it, the daemon sends it over
 * the WebSocket and the dashboard shows it: all from the same fields.
 */

/** Stable codes; scripts and clients may switch on them. */
export type ErrorCode =
  | 'CONFIG_NOT_FOUND'
  | 'CONFIG_LOAD'
  | 'CONFIG_INVALID'
  | 'SPEC_NOT_FOUND'
  | 'SPEC_INVALID'
  | 'IMAGE_NOT_FOUND'
  | 'REFERENCE_INVALID'
  | 'STORE_PATH_MISSING'
  | 'STORE_PATH_OUTSIDE'
  | 'NIX_MISSING'
  | 'NIX_FAILED'
  /** An external tool nixdock runs (podman, docker …) is not on PATH. */
  | 'TOOL_MISSING'
  /** `podman load` / `docker load` refused the image. */
  | 'LOAD_FAILED'
  | 'OUTPUT_NOT_WRITABLE'
  | 'INPUT_INVALID'
  | 'LAYER_BUILD'
  | 'INDEX'
  | 'REGISTRY'
  | 'REGISTRY_AUTH'
  | 'DIGEST_MISMATCH'
  | 'UNSAFE_ARCHIVE'
  | 'DAEMON'
  | 'ABORTED'
  /** A wait with a time limit (`events --until-built --timeout`) ran out. */
  | 'TIMEOUT'
  | 'DISK_FULL'
  | 'INTERNAL';

/** Where the problem is: a file and, for config/spec errors, a field path. */
export interface ErrorLocation {
  file?: string;
  /** Field path inside the file, e.g. `images[0].config.Cmd`. */
  field?: string;
  line?: number;
  column?: number;
}

export interface ErrorDetails {
  location?: ErrorLocation;
  /** What was found (already rendered for humans). */
  found?: string;
  /** What is allowed or expected. */
  expected?: string;
  /** What the user can do about it. */
  hint?: string;
  /** Every problem found in one file (the first is this error's own), when there are several. */
  problems?: Problem[];
  cause?: unknown;
}

/** One of several problems of a file: a config or spec file's errors are reported all at once. */
export interface Problem {
  message: string;
  location?: ErrorLocation;
  found?: string;
  expected?: string;
  hint?: string;
}

/** Exit codes the CLI guarantees. */
export const ExitCode = {
  OK: 0,
  /** A build or push ran and failed (Nix failed, registry refused, disk full …). */
  BUILD_FAILED: 1,
  /** The input was wrong: config, spec, arguments, references. Nothing was attempted. */
  BAD_INPUT: 2,
  /** A tool nixdock needs is missing (nix, podman …). */
  MISSING_TOOL: 3,
  /** A wait ran out of time (as coreutils' timeout(1) exits). */
  TIMED_OUT: 124,
  INTERRUPTED: 130,
} as const;

const BAD_INPUT_CODES = new Set<ErrorCode>([
  'CONFIG_NOT_FOUND', 'CONFIG_LOAD', 'CONFIG_INVALID', 'SPEC_NOT_FOUND', 'SPEC_INVALID',
  'IMAGE_NOT_FOUND', 'REFERENCE_INVALID', 'STORE_PATH_MISSING', 'STORE_PATH_OUTSIDE',
  'INPUT_INVALID', 'UNSAFE_ARCHIVE', 'OUTPUT_NOT_WRITABLE',
]);

export class NixdockError extends Error {
  readonly code: ErrorCode;
  readonly location?: ErrorLocation;
  readonly found?: string;
  readonly expected?: string;
  readonly hint?: string;
  readonly problems?: Problem[];

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'NixdockError';
    this.code = code;
    this.location = details.location;
    this.found = details.found;
    this.expected = details.expected;
    this.hint = details.hint;
    this.problems = details.problems;
  }

  get exitCode(): number {
    if (this.code === 'NIX_MISSING' || this.code === 'TOOL_MISSING') return ExitCode.MISSING_TOOL;
    if (this.code === 'ABORTED') return ExitCode.INTERRUPTED;
    if (this.code === 'TIMEOUT') return ExitCode.TIMED_OUT;
    return BAD_INPUT_CODES.has(this.code) ? ExitCode.BAD_INPUT : ExitCode.BUILD_FAILED;
  }

  /** The JSON form sent to clients and printed by `--json`. */
  toJSON(): SerializedError {
    return {
      code: this.code,
      message: this.message,
      ...(this.location && { location: this.location }),
      ...(this.found !== undefined && { found: this.found }),
      ...(this.expected !== undefined && { expected: this.expected }),
      ...(this.hint !== undefined && { hint: this.hint }),
      ...(this.problems && { problems: this.problems }),
    };
  }
}

export interface SerializedError {
  code: ErrorCode;
  message: string;
  location?: ErrorLocation;
  found?: string;
  expected?: string;
  hint?: string;
  problems?: Problem[];
}

/** Normalise anything thrown into a NixdockError (unknown errors become INTERNAL, ENOSPC becomes DISK_FULL). */
export function toNixdockError(err: unknown): NixdockError {
  if (err instanceof NixdockError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ENOSPC') {
    return new NixdockError('DISK_FULL', `No space left on the device while writing${e.path ? ` ${e.path}` : ''}`, {
      ...(e.path && { location: { file: e.path } }),
      hint: 'Free some disk space (or point outDir/cacheDir elsewhere) and build again; nothing half-written was kept.',
      cause: err,
    });
  }
  if (e?.name === 'AbortError') return new NixdockError('ABORTED', 'The build was stopped', { cause: err });
  // Whoever read the output went away (`nixdock stream … | head`): a stop, not a nixdock failure.
  if (e?.code === 'EPIPE') return new NixdockError('ABORTED', 'Stopped: the reader of the output went away (EPIPE)', { cause: err });
  return new NixdockError('INTERNAL', e?.message ?? String(err), { cause: err });
}

/**
 * A failed write (fs.write, a write stream, a tar worker writing to a descriptor) carries no path;
 * the caller that knows the file says it here, so DISK_FULL names what it could not write.
 */
export function withWritePath(err: unknown, path: string): unknown {
  if (err instanceof NixdockError) {
    if (err.code !== 'DISK_FULL' || err.location?.file !== undefined) return err;
    return toNixdockError(Object.assign(new Error(err.message), { code: 'ENOSPC', path, cause: err }));
  }
  const e = err as NodeJS.ErrnoException | undefined;
  if (e?.code === 'ENOSPC' && e.path === undefined) e.path = path;
  return err;
}

/** Human rendering used by the CLI: message, then where / found / expected / hint lines. */
export function formatError(err: NixdockError): string {
  const lines = [`error[${err.code}]: ${err.message}`, ...problemLines(err, '  ')];
  for (const problem of err.problems?.slice(1) ?? []) lines.push(`- ${problem.message}`, ...problemLines(problem, '    '));
  return lines.join('\n');
}

/** The where / found / expected / hint lines of one problem. */
function problemLines(problem: Problem, indent: string): string[] {
  const lines: string[] = [];
  const loc = problem.location;
  if (loc?.file || loc?.field) {
    const at = [loc.file, loc.line !== undefined ? `${loc.line}${loc.column !== undefined ? `:${loc.column}` : ''}` : undefined]
      .filter(Boolean)
      .join(':');
    lines.push(`${indent}at:       ${[at, loc.field].filter(Boolean).join(' → ')}`);
  }
  if (problem.found !== undefined) lines.push(`${indent}found:    ${problem.found}`);
  if (problem.expected !== undefined) lines.push(`${indent}expected: ${problem.expected}`);
  if (problem.hint !== undefined) lines.push(`${indent}hint:     ${problem.hint}`);
  return lines;
}
