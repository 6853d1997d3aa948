/**
 * Turns zod issues into NixdockErrors that say where (file + field path), what was found,
 * what is allowed and what to do — the same object the CLI prints and the daemon sends.
 * Every problem of a file is reported at once (the error's `problems`), each with the line and
 * column of its field where the file's text shows it (./locate.ts); the error's own fields are
 * the most telling problem's, and its message counts the others.
 */
import type { z } from 'zod';
import { NixdockError, type ErrorCode } from '../errors.js';
import { locateField } from './locate.js';
import { LAYER_BUDGET, type IssueDetails } from './schema.js';

export type ConfigErrorCode = Extract<ErrorCode, 'CONFIG_INVALID' | 'SPEC_INVALID'>;
type PathKey = PropertyKey;
type Issue = z.core.$ZodIssue;

/** What a validation ran against, so issues can be explained. */
export interface ValidationContext {
  code: ConfigErrorCode;
  file: string;
  /** Field path of the validated value inside the file ('' for the whole file). */
  field: string;
  input: unknown;
  schema: z.ZodType;
}

export interface FieldProblem {
  field: string;
  message: string;
  found?: string;
  expected?: string;
  hint?: string;
}

/** A NixdockError for one field of a config or spec file (also used by normalisation). */
export function fieldError(code: ErrorCode, file: string, problem: FieldProblem): NixdockError {
  const position = problem.field !== '' ? locateField(file, problem.field) : undefined;
  return new NixdockError(code, problem.message, {
    location: { file, ...(problem.field !== '' && { field: problem.field }), ...position },
    found: problem.found,
    expected: problem.expected,
    hint: problem.hint,
  });
}

/** Validates `ctx.input` with `ctx.schema`; throws every problem, the most telling first, as one NixdockError. */
export function validate<T>(ctx: ValidationContext): T {
  const result = ctx.schema.safeParse(ctx.input);
  if (result.success) return result.data as T;
  const issues = result.error.issues;
  const ordered = [mostTelling(issues), ...issues.filter((i) => i !== mostTelling(issues))];
  const problems = ordered.flatMap((issue) => (issue.code === 'unrecognized_keys' ? issue.keys.map((key) => unknownField(key, issue.path, ctx)) : [explain(issue, [], ctx)]));
  throw combineErrors(problems.map((problem) => fieldError(ctx.code, ctx.file, problem)));
}

/**
 * Several errors of one file (or one load) as one NixdockError: the first's fields, a message
 * counting the rest, and all of them in `problems`. Duplicates (same field, same message) go.
 */
export function combineErrors(errors: NixdockError[]): NixdockError {
  const seen = new Set<string>();
  const unique = errors.filter((e) => {
    const key = `${e.location?.file}\0${e.location?.field}\0${e.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  const [first] = unique;
  if (unique.length === 1) return first!;
  const others = unique.length - 1;
  return new NixdockError(first!.code, `${first!.message} (and ${others} more problem${others > 1 ? 's' : ''}, listed below)`, {
    location: first!.location,
    found: first!.found,
    expected: first!.expected,
    hint: first!.hint,
    problems: unique.map((e) => ({ message: e.message, location: e.location, found: e.found, expected: e.expected, hint: e.hint })),
  });
}

/** A typo'd field name explains the "missing field" issue that usually comes with it: report it first. */
function mostTelling(issues: Issue[]): Issue {
  return issues.find((i) => i.code === 'unrecognized_keys') ?? issues[0]!;
}

/** One issue → a FieldProblem. `base` is the path of the schema the issue's path is relative to. */
function explain(issue: Issue, base: PathKey[], ctx: ValidationContext): FieldProblem {
  const path = [...base, ...issue.path];
  const value = valueAt(ctx.input, path);
  const field = joinField(ctx.field, path);
  const name = `\`${field || 'the file'}\``;
  switch (issue.code) {
    case 'unrecognized_keys':
      return unknownField(issue.keys[0]!, path, ctx); // (validate lists every key; a union branch names its first)
    case 'invalid_union':
      return explainUnion(issue, path, ctx);
    case 'invalid_type':
      if (value === undefined) {
        return { field, message: `Missing required field ${name}`, expected: withDescription(expectedType(issue.expected), describeAt(ctx, path)), hint: `Add ${name}.` };
      }
      return {
        field,
        message: `${name} must be ${expectedType(issue.expected)}, not ${issue.expected === 'int' ? render(value) : typeName(value)}`,
        found: render(value),
        expected: withDescription(expectedType(issue.expected), describeAt(ctx, path)),
      };
    case 'too_big':
    case 'too_small':
      return explainRange(issue, field, value);
    case 'invalid_value':
      return {
        field,
        message: `${name} is not one of the allowed values`,
        found: render(value),
        expected: issue.values.map((v) => JSON.stringify(v)).join(', '),
        hint: valueHint(lastKey(path), value),
      };
    case 'custom': {
      const details = (issue.params ?? {}) as Partial<IssueDetails>;
      return { field, message: `${name}: ${issue.message}`, found: render(value), expected: details.expected, hint: details.hint };
    }
    case 'invalid_format':
      return { field, message: `${name}: ${issue.message}`, found: render(value), expected: describeAt(ctx, path) ?? `text matching ${issue.pattern ?? issue.format}` };
    default:
      return { field, message: `${name}: ${issue.message}`, found: render(value), expected: describeAt(ctx, path) };
  }
}

function unknownField(key: string, path: PathKey[], ctx: ValidationContext): FieldProblem {
  const allowed = objectKeysAt(ctx.schema, path, ctx.input).filter((k) => k !== '$schema');
  const suggestion = closest(key, allowed);
  const field = joinField(ctx.field, [...path, key]);
  return {
    field,
    message: `Unknown field \`${field}\`${suggestion ? ` — did you mean \`${suggestion}\`?` : ''}`,
    found: key,
    expected: allowed.length > 0 ? `one of: ${allowed.join(', ')}` : undefined,
    hint: suggestion ? `Rename \`${key}\` to \`${suggestion}\`.` : 'Remove it; `nixdock schema` prints every field with a description.',
  };
}

/** A union failed: explain the branch that came closest, or, if none matched the type, list the forms. */
function explainUnion(issue: Extract<Issue, { code: 'invalid_union' }>, path: PathKey[], ctx: ValidationContext): FieldProblem {
  const best = closestBranch(issue.errors);
  if (best) return explain(mostTelling(best), path, ctx);
  const field = joinField(ctx.field, path);
  const value = valueAt(ctx.input, path);
  return { field, message: `\`${field}\` has the wrong form (${typeName(value)})`, found: render(value), expected: issue.message };
}

/**
 * The branch that came closest: among those whose type matched (no issue at the value itself), the
 * fewest issues, a wrong literal (say `type: "nix"` vs "dir") counting double, since it marks the
 * wrong branch rather than a mistake inside the right one. Undefined when no branch matched the type.
 */
function closestBranch(branches: Issue[][]): Issue[] | undefined {
  const score = (issues: Issue[]) => issues.reduce((sum, i) => sum + (i.code === 'invalid_value' ? 2 : 1), 0);
  const typeMatched = branches.filter((issues) => !issues.some((i) => i.path.length === 0 && (i.code === 'invalid_type' || i.code === 'invalid_value')));
  return typeMatched.sort((a, b) => score(a) - score(b))[0];
}

function explainRange(issue: Extract<Issue, { code: 'too_big' | 'too_small' }>, field: string, value: unknown): FieldProblem {
  const isBig = issue.code === 'too_big';
  const limit = isBig ? (issue as { maximum: unknown }).maximum : (issue as { minimum: unknown }).minimum;
  const bound = `${isBig ? 'at most' : 'at least'} ${String(limit)}`;
  const unit = issue.origin === 'number' ? '' : issue.origin === 'string' ? ' characters' : ' entries';
  const problem: FieldProblem = { field, message: `\`${field}\` must be ${bound}${unit}`, found: render(value), expected: `${bound}${unit}` };
  if (lastKeyOf(field) === 'maxLayers') {
    problem.expected = `an integer from ${LAYER_BUDGET.min} to ${LAYER_BUDGET.max} (default ${LAYER_BUDGET.default})`;
    problem.hint = isBig
      ? `containerd and overlayfs cannot mount more than ${LAYER_BUDGET.max} layers; use ${LAYER_BUDGET.max} or less (paths beyond the budget share a layer).`
      : 'An image needs at least 2 layers: store paths and the customisation layer.';
  }
  return problem;
}

/** Field-specific advice for values outside an enum. */
function valueHint(key: PathKey | undefined, value: unknown): string | undefined {
  if (key !== 'architecture' || typeof value !== 'string') return undefined;
  const docker = /^(arm64|arm|amd64)(v\d+)$/.exec(value);
  if (docker) return `use architecture: '${docker[1]}', variant: '${docker[2]}' (OCI platform values, as in the image config)`;
  const aliases: Record<string, string> = { x86_64: 'amd64', aarch64: 'arm64', i686: '386', i386: '386', armhf: 'arm', armv7l: 'arm' };
  return aliases[value] ? `use architecture: '${aliases[value]}' (the OCI name of ${value})` : undefined;
}

// ─────────────────────────── schema walking ───────────────────────────

interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  valueType?: z.ZodType;
  innerType?: z.ZodType;
  in?: z.ZodType;
  options?: z.ZodType[];
}

const defOf = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

/** The schema that validated the value at `path` (unions: the option the value fits best). */
function schemaAt(schema: z.ZodType, path: PathKey[], input: unknown): z.ZodType | undefined {
  let current: z.ZodType | undefined = schema;
  let value = input;
  for (let i = 0; ; i++) {
    current = unwrap(current, value);
    if (!current || i === path.length) return current;
    const key = path[i]!;
    const def = defOf(current);
    current = def.type === 'object' ? def.shape?.[String(key)] : def.type === 'array' ? def.element : def.type === 'record' ? def.valueType : undefined;
    value = (value as Record<PropertyKey, unknown> | undefined)?.[key];
  }
}

function unwrap(schema: z.ZodType | undefined, value: unknown): z.ZodType | undefined {
  let current = schema;
  while (current) {
    const def = defOf(current);
    if (def.innerType) current = def.innerType;
    else if (def.type === 'pipe') current = def.in;
    else if (def.type === 'union') current = bestOption(def.options ?? [], value);
    else return current;
  }
  return current;
}

function bestOption(options: z.ZodType[], value: unknown): z.ZodType | undefined {
  const scored = options.map((option) => ({ option, issues: option.safeParse(value).error?.issues ?? [] }));
  const winner = closestBranch(scored.map((s) => s.issues));
  return scored.find((s) => s.issues === winner)?.option;
}

function objectKeysAt(schema: z.ZodType, path: PathKey[], input: unknown): string[] {
  const found = schemaAt(schema, path, input);
  const def = found && defOf(found);
  return def?.type === 'object' ? Object.keys(def.shape ?? {}) : [];
}

function describeAt(ctx: ValidationContext, path: PathKey[]): string | undefined {
  // A field's description sits on its optional() wrapper or on the inner schema: take the outermost.
  const parent = path.length === 0 ? undefined : schemaAt(ctx.schema, path.slice(0, -1), ctx.input);
  const parentDef = parent && defOf(parent);
  let current: z.ZodType | undefined =
    parentDef?.type === 'object' ? parentDef.shape?.[String(lastKey(path))] : schemaAt(ctx.schema, path, ctx.input);
  while (current) {
    if (current.description) return current.description;
    current = defOf(current).innerType;
  }
  return undefined;
}

// ─────────────────────────── rendering ───────────────────────────

function valueAt(input: unknown, path: PathKey[]): unknown {
  return path.reduce<unknown>((v, key) => (v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[key] : undefined), input);
}

/** `images[0].config.Labels["org.x"]`, prefixed by the field of the validated value. */
export function joinField(prefix: string, path: PathKey[]): string {
  let out = prefix;
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(String(key))) out += out === '' ? String(key) : `.${String(key)}`;
    else out += `[${JSON.stringify(String(key))}]`;
  }
  return out;
}

function lastKey(path: PathKey[]): PathKey | undefined {
  return path[path.length - 1];
}

function lastKeyOf(field: string): string {
  return field.split(/[.[]/).pop() ?? '';
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return article(typeof value);
}

function expectedType(zodType: string): string {
  return zodType === 'int' ? 'a whole number' : article(zodType);
}

function withDescription(type: string, description: string | undefined): string {
  return description ? `${type} — ${description}` : type;
}

function article(word: string): string {
  return /^[aeiou]/.test(word) ? `an ${word}` : `a ${word}`;
}

/** A short rendering of a value for `found:` lines. */
export function render(value: unknown): string {
  if (value === undefined) return 'nothing';
  const json = JSON.stringify(value) ?? String(value);
  return json.length > 80 ? `${json.slice(0, 77)}…` : json;
}

/** The allowed name closest to `key`, when it is close enough to be a typo. */
export function closest(key: string, allowed: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of allowed) {
    const d = candidate.toLowerCase() === key.toLowerCase() ? 0 : levenshtein(key, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

function levenshtein(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}
