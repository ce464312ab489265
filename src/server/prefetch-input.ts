// What a prefetch (`gomodproxy prefetch`, POST /-/api/prefetch, a sync job's prefetch file) is
// asked for, read from whatever a Go project has at hand: a go.mod, a go.sum, the output of
// `go list -m all` or `go list -m -json all`, a file of module@version (or module@query) lines,
// or such specs as arguments. Pure: the caller reads the files. A line that cannot be understood
// is an InputError naming the file and line, never skipped: a list of what to bring onto an
// offline host that silently lost an entry would be found out too late.
import { ModuleError, canonicalVersion, check, modulePathError, parseGoMod } from '../module/index.js';

/** One module version (or query) to fetch. */
export interface Wanted {
  path: string;
  /** A canonical version, or a query still to resolve (latest, v1.2, <v1.3.0, a branch, a commit). */
  query: string;
  /** The zip too; false when only the go.mod is needed (a go.sum with just the /go.mod line). */
  zip: boolean;
  /** Where it was asked for, for messages: "go.sum:12", "argument 2". */
  from: string;
}

/** A go.mod replace directive that names a module version (directory replacements fetch nothing). */
export interface Replacement {
  old: { path: string; version: string };
  new: { path: string; version: string };
}

export interface Input {
  wanted: Wanted[];
  /** The main module's replacements, which apply to the whole graph (--deps), as for the go command. */
  replace: Replacement[];
}

export type InputFormat = 'go.mod' | 'go.sum' | 'go list -m all' | 'go list -m -json all' | 'module@version lines';

export class InputError extends Error {
  override readonly name = 'InputError';
}

/** Whether a string is an exact version of the module (nothing to resolve). */
export function isExact(modulePath: string, query: string): boolean {
  if (canonicalVersion(query) !== query) return false;
  try {
    check(modulePath, query);
    return true;
  } catch {
    return false;
  }
}

/** `module@version` or `module@query`; throws InputError with `from` in the message. */
export function parseSpec(spec: string, from: string): Wanted {
  const at = spec.lastIndexOf('@');
  if (at <= 0 || at === spec.length - 1) {
    throw new InputError(`${from}: ${JSON.stringify(spec)} is not module@version (or module@latest, module@<branch>)`);
  }
  const path = spec.slice(0, at);
  const query = spec.slice(at + 1);
  const bad = modulePathError(path);
  if (bad !== undefined) throw new InputError(`${from}: ${JSON.stringify(path)} is not a module path: ${bad}`);
  if (/[\s/\\:*?"|!]/.test(query) || query.startsWith('-')) throw new InputError(`${from}: ${JSON.stringify(query)} is not a version or query`);
  if (query === 'upgrade' || query === 'patch' || query === 'none') {
    throw new InputError(`${from}: ${spec}: the query ${query} is relative to a version a main module requires; name a version or use @latest`);
  }
  return { path, query, zip: true, from };
}

/** Which of the formats `text` is in; `name` (the file name) decides first where it says. */
export function detectFormat(text: string, name: string): InputFormat {
  const base = name.split(/[\\/]/).pop() ?? name;
  if (text.trimStart().startsWith('{')) return 'go list -m -json all';
  if (base === 'go.sum' || base.endsWith('.sum')) return 'go.sum';
  if (base === 'go.mod' || base.endsWith('.mod')) return 'go.mod';
  const lines = meaningful(text);
  if (lines.length === 0) return 'module@version lines';
  if (lines.every(({ line }) => /^\S+\s+\S+\s+h\d+:\S*$/.test(line))) return 'go.sum';
  if (lines.some(({ line }) => GOMOD_DIRECTIVE.test(line))) return 'go.mod';
  if (/^\S*@/.test(lines[0]?.line ?? '')) return 'module@version lines';
  return 'go list -m all';
}

/** Reads one input in whichever format it is in. */
export function parseInput(text: string, name: string): Input {
  switch (detectFormat(text, name)) {
    case 'go.mod':
      return parseGoModInput(text, name);
    case 'go.sum':
      return { wanted: parseGoSum(text, name), replace: [] };
    case 'go list -m all':
      return { wanted: parseGoList(text, name), replace: [] };
    case 'go list -m -json all':
      return { wanted: parseGoListJson(text, name), replace: [] };
    case 'module@version lines':
      return { wanted: parseSpecLines(text, name), replace: [] };
  }
}

// A go.mod directive at the start of a line; a module path (what starts every other format's
// lines) cannot be one of these words, as its first element must contain a dot.
const GOMOD_DIRECTIVE = /^(module|go|toolchain|godebug|require|exclude|replace|retract|tool|ignore)(\s|\(|$)/;

/** Lines that say something: trimmed, comments (# and //) and blank lines dropped, with their numbers. */
function meaningful(text: string): { line: string; n: number }[] {
  const out: { line: string; n: number }[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/(^|\s)(#|\/\/).*$/, '').trim();
    if (line !== '') out.push({ line, n: i + 1 });
  });
  return out;
}

/**
 * go.sum: `<module> <version> h1:...` wants the whole version; a version with only its
 * `<version>/go.mod` line was needed for its go.mod alone, and gets that (and its .info).
 */
export function parseGoSum(text: string, name: string): Wanted[] {
  const byKey = new Map<string, Wanted>();
  for (const { line, n } of meaningful(text)) {
    const f = line.split(/\s+/);
    const from = `${name}:${n}`;
    if (f.length !== 3 || !/^h\d+:/.test(f[2] as string))
      throw new InputError(`${from}: expected "<module> <version>[/go.mod] h1:<hash>", got ${JSON.stringify(line)}`);
    const path = f[0] as string;
    const modOnly = (f[1] as string).endsWith('/go.mod');
    const version = modOnly ? (f[1] as string).slice(0, -'/go.mod'.length) : (f[1] as string);
    exact(path, version, from);
    const key = `${path}@${version}`;
    const had = byKey.get(key);
    if (had) had.zip ||= !modOnly;
    else byKey.set(key, { path, query: version, zip: !modOnly, from });
  }
  return [...byKey.values()];
}

/**
 * A go.mod (the main module's, parsed as the go command parses it): every requirement, each
 * replaced as its replace directives say (a directory replacement needs nothing fetched).
 */
export function parseGoModInput(text: string, name: string): Input {
  let f;
  try {
    f = parseGoMod(text, name, { strict: true });
  } catch (err) {
    if (err instanceof ModuleError) throw new InputError(err.message);
    throw err;
  }
  const replace: Replacement[] = f.replace.map((r) => ({ old: r.old, new: r.new }));
  const wanted: Wanted[] = [];
  for (const r of f.require) {
    const to = replaced(replace, r.path, r.version);
    if (to) wanted.push({ path: to.path, query: to.version, zip: true, from: `${name} (require ${r.path} ${r.version})` });
  }
  return { wanted, replace };
}

/**
 * What the go command uses for `path@version` under these replacements: the replacement of that
 * exact version, else of every version, else itself; null for a directory replacement.
 */
export function replaced(replace: readonly Replacement[], path: string, version: string): { path: string; version: string } | null {
  const r = replace.find((x) => x.old.path === path && x.old.version === version) ?? replace.find((x) => x.old.path === path && x.old.version === '');
  if (!r) return { path, version };
  return r.new.version === '' ? null : r.new;
}

/**
 * `go list -m all`: the main module alone on its first line, then `<module> <version>`, maybe
 * `=> <replacement> [<version>]`, and with -u or -retracted bracketed updates and parenthesized
 * notes, which say nothing about what the build uses.
 */
export function parseGoList(text: string, name: string): Wanted[] {
  const out: Wanted[] = [];
  for (const { line, n } of meaningful(text)) {
    const from = `${name}:${n}`;
    const t = line.split(/\s+/).filter((x) => !/^\[.*\]$/.test(x) && !/^\(.*\)$/.test(x));
    const path = t[0] as string;
    const bad = modulePathError(path);
    if (bad !== undefined) throw new InputError(`${from}: expected "<module> <version>" as go list -m all prints it, got ${JSON.stringify(line)}`);
    const arrow = t.indexOf('=>');
    const version = arrow === 1 ? undefined : t[1];
    if (arrow >= 0) {
      const to = t[arrow + 1];
      const toVersion = t[arrow + 2];
      if (to === undefined) throw new InputError(`${from}: a replacement without its target: ${JSON.stringify(line)}`);
      // A directory replacement is not fetched from anywhere.
      if (toVersion === undefined) continue;
      exact(to, toVersion, from);
      out.push({ path: to, query: toVersion, zip: true, from });
      continue;
    }
    // The main module (and workspace modules) have no version.
    if (version === undefined) continue;
    if (t.length > 2) throw new InputError(`${from}: expected "<module> <version>" as go list -m all prints it, got ${JSON.stringify(line)}`);
    exact(path, version, from);
    out.push({ path, query: version, zip: true, from });
  }
  return out;
}

interface ListedModule {
  Path?: unknown;
  Version?: unknown;
  Main?: unknown;
  Replace?: { Path?: unknown; Version?: unknown } | null;
}

/** `go list -m -json all`: a stream of objects; the main module and directory replacements fetch nothing. */
export function parseGoListJson(text: string, name: string): Wanted[] {
  const out: Wanted[] = [];
  let i = 0;
  for (const { value, line } of jsonStream(text, name)) {
    i++;
    const from = `${name}:${line}`;
    if (!value || typeof value !== 'object' || Array.isArray(value)) throw new InputError(`${from}: expected a module object as go list -m -json prints it`);
    const m = value as ListedModule;
    if (typeof m.Path !== 'string') throw new InputError(`${from}: module object ${i} has no Path`);
    if (m.Main === true) continue;
    const target = m.Replace && typeof m.Replace === 'object' ? m.Replace : m;
    if (typeof target.Path !== 'string') throw new InputError(`${from}: module object ${i} has a Replace without a Path`);
    if (target.Version === undefined || target.Version === '') continue;
    if (typeof target.Version !== 'string') throw new InputError(`${from}: module object ${i} has a Version that is not a string`);
    exact(target.Path, target.Version, from);
    out.push({ path: target.Path, query: target.Version, zip: true, from });
  }
  return out;
}

/** One `module@version` or `module@query` per line (or several, separated by spaces); comments with # or //. */
export function parseSpecLines(text: string, name: string): Wanted[] {
  const out: Wanted[] = [];
  for (const { line, n } of meaningful(text)) for (const spec of line.split(/\s+/)) out.push(parseSpec(spec, `${name}:${n}`));
  return out;
}

/** Throws unless version is a canonical version of path (what go.sum and go list print). */
function exact(path: string, version: string, from: string): void {
  const bad = modulePathError(path);
  if (bad !== undefined) throw new InputError(`${from}: ${JSON.stringify(path)} is not a module path: ${bad}`);
  if (!isExact(path, version)) throw new InputError(`${from}: ${JSON.stringify(version)} is not a canonical version of ${path}`);
}

/** Concatenated JSON values (what `go ... -json` prints), each with the line it starts on. */
function* jsonStream(text: string, name: string): Generator<{ value: unknown; line: number }> {
  let depth = 0;
  let start = -1;
  let startLine = 1;
  let line = 1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\n') line++;
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{' || c === '[') {
      if (depth === 0) {
        start = i;
        startLine = line;
      }
      depth++;
    } else if (c === '}' || c === ']') {
      depth--;
      if (depth < 0) throw new InputError(`${name}:${line}: unbalanced ${c}`);
      if (depth === 0) {
        try {
          yield { value: JSON.parse(text.slice(start, i + 1)) as unknown, line: startLine };
        } catch (err) {
          throw new InputError(`${name}:${startLine}: not valid JSON (${(err as Error).message})`);
        }
      }
    } else if (depth === 0 && c !== undefined && !/\s/.test(c)) {
      throw new InputError(`${name}:${line}: unexpected ${JSON.stringify(c)} between JSON objects`);
    }
  }
  if (depth !== 0 || inString) throw new InputError(`${name}: the JSON stops in the middle of an object`);
}
