/**
 * Line and column of a field path (`images[0].config.Cmd`) in a config or spec file's text, so an
 * error points at the spot. JSON is exact. A TS/JS config is read the same way — its object
 * literal after `export default`, `defineConfig(`/`defineImage(` or `module.exports =` — which
 * covers configs written as literals (the usual case); a value computed elsewhere (a variable, a
 * spread, a function call) has no position of its own, and the error then points at the nearest
 * enclosing field that has one, or has no line at all.
 */
import { readFileSync } from 'node:fs';

export interface Position {
  line: number;
  column: number;
}

type Key = string | number;

/** The position of `field` (or of its nearest located ancestor) in `file`; undefined when unknown. */
export function locateField(file: string, field: string): Position | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const offsets = fieldOffsets(text, /\.json$|(^|\/)\.nixdockrc$/.test(file));
  const path = parseField(field);
  for (let n = path.length; n > 0; n--) {
    const offset = offsets.get(pathKey(path.slice(0, n)));
    if (offset !== undefined) return position(text, offset);
  }
  return undefined;
}

/** `images[0].Labels["org.x"]` → ['images', 0, 'Labels', 'org.x']. */
export function parseField(field: string): Key[] {
  const keys: Key[] = [];
  const re = /\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]|\.?([^.[\]]+)/g;
  for (let m = re.exec(field); m; m = re.exec(field)) {
    if (m[1] !== undefined) keys.push(Number(m[1]));
    else if (m[2] !== undefined) keys.push(JSON.parse(m[2]) as string);
    else keys.push(m[3]!);
  }
  return keys;
}

const pathKey = (path: Key[]) => JSON.stringify(path);

function position(text: string, offset: number): Position {
  const before = text.slice(0, offset).split('\n');
  return { line: before.length, column: before[before.length - 1]!.length + 1 };
}

// ─────────────────────────── a tolerant object-literal reader ───────────────────────────

interface Token {
  text: string;
  offset: number;
  /** A string literal's value. */
  value?: string;
}

/** Offsets of every key (and array element) in the file's top-level literal, by path. */
function fieldOffsets(text: string, isJson: boolean): Map<string, number> {
  const tokens = tokenize(text);
  const offsets = new Map<string, number>();
  const start = isJson ? 0 : literalStart(tokens);
  if (start === undefined) return offsets;
  const reader = { tokens, i: start, offsets };
  try {
    readValue(reader, []);
  } catch {
    // A syntax the reader does not follow: keep what was found so far.
  }
  return offsets;
}

interface Reader {
  tokens: Token[];
  i: number;
  offsets: Map<string, number>;
}

/** The token after `export default`, `defineConfig(`, `defineImage(` or `module.exports =`. */
function literalStart(tokens: Token[]): number | undefined {
  for (let i = 0; i < tokens.length - 1; i++) {
    const [a, b] = [tokens[i]!.text, tokens[i + 1]!.text];
    if ((a === 'defineConfig' || a === 'defineImage') && b === '(') return i + 2;
    if (a === 'export' && b === 'default' && tokens[i + 2]?.text !== 'defineConfig' && tokens[i + 2]?.text !== 'defineImage') return i + 2;
    if (a === 'exports' && b === '=') return i + 2;
  }
  return undefined;
}

function readValue(r: Reader, path: Key[]): void {
  const token = r.tokens[r.i];
  if (token?.text === '{') return readObject(r, path);
  if (token?.text === '[') return readArray(r, path);
  skipExpression(r);
}

function readObject(r: Reader, path: Key[]): void {
  r.i++; // {
  while (r.i < r.tokens.length && r.tokens[r.i]!.text !== '}') {
    const token = r.tokens[r.i]!;
    if (token.text === ',') {
      r.i++;
      continue;
    }
    if (token.text === '...') {
      r.i++;
      skipExpression(r);
      continue;
    }
    if (token.text === '[') {
      skipBalanced(r); // a computed key
      if (r.tokens[r.i]?.text === ':') r.i++;
      skipExpression(r);
      continue;
    }
    const key = token.value ?? token.text;
    r.i++;
    const next = r.tokens[r.i]?.text;
    if (next === ':') {
      r.offsets.set(pathKey([...path, key]), token.offset);
      r.i++;
      readValue(r, [...path, key]);
    } else if (next === ',' || next === '}') {
      r.offsets.set(pathKey([...path, key]), token.offset); // shorthand `{ name }`
    } else {
      skipExpression(r); // a method or getter
    }
  }
  r.i++; // }
}

function readArray(r: Reader, path: Key[]): void {
  r.i++; // [
  let index = 0;
  let counting = true; // a spread makes the indices after it unknowable
  while (r.i < r.tokens.length && r.tokens[r.i]!.text !== ']') {
    const token = r.tokens[r.i]!;
    if (token.text === ',') {
      r.i++;
      index++;
      continue;
    }
    if (token.text === '...') counting = false;
    if (counting) r.offsets.set(pathKey([...path, index]), token.offset);
    if (counting) readValue(r, [...path, index]);
    else skipExpression(r);
  }
  r.i++; // ]
}

/** Skips one expression: up to a `,` `}` `]` `)` that is not nested inside it. */
function skipExpression(r: Reader): void {
  while (r.i < r.tokens.length) {
    const text = r.tokens[r.i]!.text;
    if (text === ',' || text === '}' || text === ']' || text === ')') return;
    if (text === '{' || text === '[' || text === '(') skipBalanced(r);
    else r.i++;
  }
}

function skipBalanced(r: Reader): void {
  let depth = 0;
  do {
    const text = r.tokens[r.i]!.text;
    if (text === '{' || text === '[' || text === '(') depth++;
    else if (text === '}' || text === ']' || text === ')') depth--;
    r.i++;
  } while (depth > 0 && r.i < r.tokens.length);
}

/** JS/JSON tokens, enough to follow literals: comments skipped, strings and templates whole. */
function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (text.startsWith('//', i)) {
      i = lineEnd(text, i);
    } else if (text.startsWith('/*', i)) {
      const end = text.indexOf('*/', i + 2);
      i = end < 0 ? text.length : end + 2;
    } else if (c === '"' || c === "'") {
      const end = stringEnd(text, i, c);
      tokens.push({ text: text.slice(i, end), offset: i, value: unquote(text.slice(i, end)) });
      i = end;
    } else if (c === '`') {
      const end = templateEnd(text, i);
      tokens.push({ text: text.slice(i, end), offset: i });
      i = end;
    } else if (text.startsWith('...', i)) {
      tokens.push({ text: '...', offset: i });
      i += 3;
    } else if (/[\w$]/.test(c)) {
      let end = i + 1;
      while (end < text.length && /[\w$]/.test(text[end]!)) end++;
      tokens.push({ text: text.slice(i, end), offset: i });
      i = end;
    } else {
      tokens.push({ text: c, offset: i });
      i++;
    }
  }
  return tokens;
}

function lineEnd(text: string, i: number): number {
  const end = text.indexOf('\n', i);
  return end < 0 ? text.length : end;
}

function stringEnd(text: string, start: number, quote: string): number {
  let i = start + 1;
  while (i < text.length && text[i] !== quote && text[i] !== '\n') i += text[i] === '\\' ? 2 : 1;
  return i + 1;
}

function templateEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length && text[i] !== '`') {
    if (text[i] === '\\') i += 2;
    else if (text.startsWith('${', i)) {
      let depth = 1;
      i += 2;
      while (i < text.length && depth > 0) {
        if (text[i] === '{') depth++;
        else if (text[i] === '}') depth--;
        else if (text[i] === '`') i = templateEnd(text, i) - 1;
        i++;
      }
    } else i++;
  }
  return i + 1;
}

function unquote(literal: string): string {
  if (literal.startsWith('"')) {
    try {
      return JSON.parse(literal) as string;
    } catch {
      return literal.slice(1, -1);
    }
  }
  return literal.slice(1, -1).replace(/\\(.)/g, '$1');
}
