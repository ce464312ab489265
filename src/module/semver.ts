// Go's semantic versions (golang.org/x/mod/semver), not npm's: the leading "v" is required,
// "v1" and "v1.2" are shorthands for v1.0.0 and v1.2.0, numbers have no size limit, and every
// invalid string sorts below every valid one.
import { compareStrings } from './text.js';

interface Parsed {
  major: string;
  minor: string;
  patch: string;
  /** What a shorthand lacks: ".0.0" for "v1", ".0" for "v1.2", else "". */
  short: string;
  prerelease: string;
  build: string;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isIdentChar(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || isDigit(c) || c === 0x2d;
}

/** End of the decimal number starting at i, or -1 if there is none or it has a leading zero. */
function scanInt(v: string, i: number): number {
  if (i >= v.length || !isDigit(v.charCodeAt(i))) return -1;
  let j = i + 1;
  while (j < v.length && isDigit(v.charCodeAt(j))) j++;
  if (v.charCodeAt(i) === 0x30 && j !== i + 1) return -1;
  return j;
}

/** A numeric identifier with a leading zero ("01"): invalid in a prerelease. */
function isBadNum(v: string, start: number, end: number): boolean {
  if (end - start < 2 || v.charCodeAt(start) !== 0x30) return false;
  for (let k = start; k < end; k++) if (!isDigit(v.charCodeAt(k))) return false;
  return true;
}

/** End of the prerelease starting with "-" at i, or -1. */
function scanPrerelease(v: string, i: number): number {
  let j = i + 1;
  let start = j;
  for (; j < v.length; j++) {
    const c = v.charCodeAt(j);
    if (c === 0x2b) break;
    if (c === 0x2e) {
      if (start === j || isBadNum(v, start, j)) return -1;
      start = j + 1;
    } else if (!isIdentChar(c)) {
      return -1;
    }
  }
  if (start === j || isBadNum(v, start, j)) return -1;
  return j;
}

/** Whether v[i:] (starting with "+") is a valid build suffix running to the end. */
function validBuild(v: string, i: number): boolean {
  let start = i + 1;
  let j = start;
  for (; j < v.length; j++) {
    const c = v.charCodeAt(j);
    if (c === 0x2e) {
      if (start === j) return false;
      start = j + 1;
    } else if (!isIdentChar(c)) {
      return false;
    }
  }
  return start !== j;
}

function parse(v: string): Parsed | undefined {
  if (v.length === 0 || v.charCodeAt(0) !== 0x76) return undefined;
  const majEnd = scanInt(v, 1);
  if (majEnd < 0) return undefined;
  const major = v.slice(1, majEnd);
  if (majEnd === v.length) return { major, minor: '0', patch: '0', short: '.0.0', prerelease: '', build: '' };
  if (v.charCodeAt(majEnd) !== 0x2e) return undefined;
  const minEnd = scanInt(v, majEnd + 1);
  if (minEnd < 0) return undefined;
  const minor = v.slice(majEnd + 1, minEnd);
  if (minEnd === v.length) return { major, minor, patch: '0', short: '.0', prerelease: '', build: '' };
  if (v.charCodeAt(minEnd) !== 0x2e) return undefined;
  const patEnd = scanInt(v, minEnd + 1);
  if (patEnd < 0) return undefined;
  const patch = v.slice(minEnd + 1, patEnd);
  let i = patEnd;
  let prerelease = '';
  if (i < v.length && v.charCodeAt(i) === 0x2d) {
    const end = scanPrerelease(v, i);
    if (end < 0) return undefined;
    prerelease = v.slice(i, end);
    i = end;
  }
  let build = '';
  if (i < v.length && v.charCodeAt(i) === 0x2b) {
    if (!validBuild(v, i)) return undefined;
    build = v.slice(i);
    i = v.length;
  }
  if (i !== v.length) return undefined;
  return { major, minor, patch, short: '', prerelease, build };
}

/** Reports whether v is a valid semantic version string. */
export function isValid(v: string): boolean {
  return parse(v) !== undefined;
}

/**
 * The canonical formatting of v: shorthands completed, build metadata dropped
 * ("v1.2" -> "v1.2.0", "v1.2.3+meta" -> "v1.2.3"); "" if v is invalid.
 */
export function canonical(v: string): string {
  const p = parse(v);
  if (p === undefined) return '';
  if (p.build !== '') return v.slice(0, v.length - p.build.length);
  if (p.short !== '') return v + p.short;
  return v;
}

/** Whether v is valid and already in canonical form (so it may name a .mod or .zip). */
export function isCanonical(v: string): boolean {
  const p = parse(v);
  return p !== undefined && p.build === '' && p.short === '';
}

/** The major version prefix ("v2" for "v2.1.0"), or "" if v is invalid. */
export function major(v: string): string {
  const p = parse(v);
  return p === undefined ? '' : v.slice(0, 1 + p.major.length);
}

/** The major.minor prefix ("v2.1" for "v2.1.0", "v1.0" for "v1"), or "" if v is invalid. */
export function majorMinor(v: string): string {
  const p = parse(v);
  if (p === undefined) return '';
  const i = 1 + p.major.length;
  const j = i + 1 + p.minor.length;
  if (j <= v.length && v.charCodeAt(i) === 0x2e && v.slice(i + 1, j) === p.minor) return v.slice(0, j);
  return v.slice(0, i) + '.' + p.minor;
}

/** The prerelease suffix including its "-" ("-rc.1"), or "". */
export function prerelease(v: string): string {
  return parse(v)?.prerelease ?? '';
}

/** The build suffix including its "+" ("+incompatible"), or "". */
export function build(v: string): string {
  return parse(v)?.build ?? '';
}

function compareInt(x: string, y: string): number {
  if (x === y) return 0;
  if (x.length !== y.length) return x.length < y.length ? -1 : 1;
  return x < y ? -1 : 1;
}

function isNum(s: string): boolean {
  for (let k = 0; k < s.length; k++) if (!isDigit(s.charCodeAt(k))) return false;
  return true;
}

function comparePrerelease(x: string, y: string): number {
  // SemVer 2.0 rule 11: a release outranks its prereleases; identifiers compare numerically when
  // both are numbers, numbers rank below words, and a shorter list ranks below a longer one.
  if (x === y) return 0;
  if (x === '') return 1;
  if (y === '') return -1;
  const xs = x.slice(1).split('.');
  const ys = y.slice(1).split('.');
  const n = Math.min(xs.length, ys.length);
  for (let k = 0; k < n; k++) {
    const dx = xs[k] as string;
    const dy = ys[k] as string;
    if (dx === dy) continue;
    const ix = isNum(dx);
    const iy = isNum(dy);
    if (ix !== iy) return ix ? -1 : 1;
    if (ix && dx.length !== dy.length) return dx.length < dy.length ? -1 : 1;
    return dx < dy ? -1 : 1;
  }
  return xs.length < ys.length ? -1 : 1;
}

/**
 * Compares two versions: -1, 0 or +1. Build metadata is ignored; an invalid version equals
 * another invalid one and is less than any valid one.
 */
export function compare(v: string, w: string): number {
  const pv = parse(v);
  const pw = parse(w);
  if (pv === undefined) return pw === undefined ? 0 : -1;
  if (pw === undefined) return 1;
  return compareInt(pv.major, pw.major) || compareInt(pv.minor, pw.minor) || compareInt(pv.patch, pw.patch) || comparePrerelease(pv.prerelease, pw.prerelease);
}

/** The larger of v and w in canonical form; on a tie (or both invalid) canonical(w). */
export function max(v: string, w: string): string {
  const cv = canonical(v);
  const cw = canonical(w);
  return compare(cv, cw) > 0 ? cv : cw;
}

/** Orders versions by compare, breaking ties by Go string order (semver.Sort). */
export function compareVersions(a: string, b: string): number {
  return compare(a, b) || compareStrings(a, b);
}

/** Sorts list in place like semver.Sort and returns it. */
export function sort(list: string[]): string[] {
  return list.sort(compareVersions);
}
