// Case-encoding of module paths and versions for URLs and file names (module.EscapePath & co.):
// each upper-case ASCII letter becomes "!" plus its lower case, so that no two valid paths differ
// only in case once escaped. These run on every proxy request, so the common case (nothing to
// escape) is a single scan that returns its input.
import { ModuleError } from './errors.js';
import { fileElemError, modulePathError } from './path.js';
import { quote } from './text.js';

/**
 * Escapes s, which the caller has checked; returns s itself when it has no upper case.
 * Returns undefined if s holds "!" or non-ASCII, which the checks should have excluded.
 */
function escapeString(s: string): string | undefined {
  let upper = -1;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x21 || c >= 0x80) return undefined;
    if (upper < 0 && c >= 0x41 && c <= 0x5a) upper = i;
  }
  if (upper < 0) return s;
  let out = s.slice(0, upper);
  let from = upper;
  for (let i = upper; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) {
      out += s.slice(from, i) + '!' + String.fromCharCode(c + 0x20);
      from = i + 1;
    }
  }
  return out + s.slice(from);
}

/**
 * Undoes escapeString; returns undefined for non-ASCII, an upper-case letter, or a "!" not
 * followed by a lower-case letter. Returns escaped itself when it holds no "!".
 */
function unescapeString(escaped: string): string | undefined {
  let bang = -1;
  for (let i = 0; i < escaped.length; i++) {
    const c = escaped.charCodeAt(i);
    if (c >= 0x80 || (c >= 0x41 && c <= 0x5a)) return undefined;
    if (c === 0x21 && bang < 0) bang = i;
  }
  if (bang < 0) return escaped;
  let out = escaped.slice(0, bang);
  let from = bang;
  for (let i = bang; i < escaped.length; i++) {
    if (escaped.charCodeAt(i) !== 0x21) continue;
    const next = escaped.charCodeAt(i + 1); // NaN past the end, which fails the test below
    if (!(next >= 0x61 && next <= 0x7a)) return undefined;
    out += escaped.slice(from, i) + String.fromCharCode(next - 0x20);
    i++;
    from = i + 1;
  }
  return out + escaped.slice(from);
}

/** The escaped form of module path p ("github.com/Azure/x" -> "github.com/!azure/x"); p must pass checkPath. */
export function escapePath(p: string): string {
  const err = modulePathError(p);
  if (err !== undefined) throw new ModuleError(`malformed module path ${quote(p)}: ${err}`, { path: p });
  const escaped = escapeString(p);
  if (escaped === undefined) throw new ModuleError('internal error: inconsistency in EscapePath', { path: p });
  return escaped;
}

/** The module path an escaped path stands for; the result must pass checkPath. */
export function unescapePath(escaped: string): string {
  const p = unescapeString(escaped);
  if (p === undefined) throw new ModuleError(`invalid escaped module path ${quote(escaped)}`);
  const err = modulePathError(p);
  if (err !== undefined) {
    throw new ModuleError(`invalid escaped module path ${quote(escaped)}: malformed module path ${quote(p)}: ${err}`, {
      path: p,
    });
  }
  return p;
}

/**
 * The escaped form of version v. Versions need not be semver (a query may be a branch name) but
 * must be valid file names without "!".
 */
export function escapeVersion(v: string): string {
  if (fileElemError(v) !== undefined || v.includes('!')) {
    throw new ModuleError(`version ${quote(v)} invalid: disallowed version string`, { version: v });
  }
  const escaped = escapeString(v);
  if (escaped === undefined) throw new ModuleError('internal error: inconsistency in EscapePath', { version: v });
  return escaped;
}

/** The version an escaped version stands for; the result must be a valid file name. */
export function unescapeVersion(escaped: string): string {
  const v = unescapeString(escaped);
  if (v === undefined) throw new ModuleError(`invalid escaped version ${quote(escaped)}`);
  const err = fileElemError(v);
  if (err !== undefined) throw new ModuleError(`invalid escaped version ${quote(v)}: ${err}`, { version: v });
  return v;
}
