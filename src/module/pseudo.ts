// Pseudo-versions (golang.org/x/mod/module/pseudo.go): versions the go command invents for
// untagged commits, "<base>-<yyyymmddhhmmss>-<12 hex of the commit>" in one of three forms.
import { ModuleError } from './errors.js';
import { build as semverBuild, canonical, isValid, major as semverMajor, prerelease } from './semver.js';
import { quote } from './text.js';

const PSEUDO_RE = /^v[0-9]+\.(0\.0-|\d+\.\d+-([^+]*\.)?0\.)\d{14}-[A-Za-z0-9]+(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$/;

/** The timestamp of module.ZeroPseudoVersion: Go's zero time.Time, 0001-01-01 00:00:00 UTC. */
const ZERO_TIMESTAMP = '00010101000000';

function pseudoError(v: string, reason: string): ModuleError {
  return new ModuleError(`pseudo-version ${quote(v)} invalid: ${reason}`, { version: v });
}

function countHyphens(v: string): number {
  let n = 0;
  for (let i = v.indexOf('-'); i >= 0; i = v.indexOf('-', i + 1)) n++;
  return n;
}

/** Reports whether v has pseudo-version syntax. */
export function isPseudoVersion(v: string): boolean {
  return countHyphens(v) >= 2 && isValid(v) && PSEUDO_RE.test(v);
}

/** Reports whether v is the placeholder pseudo-version that names no commit. */
export function isZeroPseudoVersion(v: string): boolean {
  return v === zeroPseudoVersion(semverMajor(v));
}

/** The placeholder pseudo-version for a major version ("" means v0). */
export function zeroPseudoVersion(major: string): string {
  return `${major === '' ? 'v0' : major}.0.0-${ZERO_TIMESTAMP}-000000000000`;
}

/** Increments a decimal string: "9" -> "10", "199" -> "200". */
export function incDecimal(decimal: string): string {
  let i = decimal.length - 1;
  while (i >= 0 && decimal.charCodeAt(i) === 0x39) i--;
  if (i < 0) return '1' + '0'.repeat(decimal.length);
  return decimal.slice(0, i) + String.fromCharCode(decimal.charCodeAt(i) + 1) + '0'.repeat(decimal.length - 1 - i);
}

/** Decrements a decimal string: "10" -> "9", "200" -> "199"; "" when it would go below zero. */
export function decDecimal(decimal: string): string {
  let i = decimal.length - 1;
  while (i >= 0 && decimal.charCodeAt(i) === 0x30) i--;
  if (i < 0) return '';
  const nines = '9'.repeat(decimal.length - 1 - i);
  if (i === 0 && decimal.charCodeAt(0) === 0x31 && decimal.length > 1) return nines;
  return decimal.slice(0, i) + String.fromCharCode(decimal.charCodeAt(i) - 1) + nines;
}

function pad(n: number, width: number): string {
  // Go's time formatting pads the magnitude and puts the sign in front: year -5 is "-0005".
  const s = String(Math.abs(n)).padStart(width, '0');
  return n < 0 ? '-' + s : s;
}

/** The 14-digit UTC timestamp of a pseudo-version (time.Format "20060102150405"). */
export function formatPseudoTimestamp(t: Date): string {
  if (Number.isNaN(t.getTime())) throw new ModuleError('invalid time for pseudo-version');
  return (
    pad(t.getUTCFullYear(), 4) +
    pad(t.getUTCMonth() + 1, 2) +
    pad(t.getUTCDate(), 2) +
    pad(t.getUTCHours(), 2) +
    pad(t.getUTCMinutes(), 2) +
    pad(t.getUTCSeconds(), 2)
  );
}

/**
 * Builds a pseudo-version for commit rev at time t, on top of the semver tag older
 * ("" when the commit has no tagged ancestor; major then gives the path's major, "" meaning v0).
 * Like Go's, it trusts its arguments: rev should already be the 12-character short hash.
 */
export function pseudoVersion(major: string, older: string, t: Date, rev: string): string {
  const segment = `${formatPseudoTimestamp(t)}-${rev}`;
  const buildSuffix = semverBuild(older);
  const base = canonical(older);
  if (base === '') return `${major === '' ? 'v0' : major}.0.0-${segment}`;
  if (prerelease(base) !== '') return `${base}.0.${segment}${buildSuffix}`;
  const i = base.lastIndexOf('.') + 1;
  return `${base.slice(0, i)}${incDecimal(base.slice(i))}-0.${segment}${buildSuffix}`;
}

interface PseudoParts {
  base: string;
  timestamp: string;
  rev: string;
  build: string;
}

function parsePseudoVersion(v: string): PseudoParts {
  if (!isPseudoVersion(v)) throw pseudoError(v, 'syntax error');
  const build = semverBuild(v);
  const rest = v.slice(0, v.length - build.length);
  const j = rest.lastIndexOf('-');
  const rev = rest.slice(j + 1);
  const head = rest.slice(0, j);
  const i = head.lastIndexOf('-');
  const dot = head.lastIndexOf('.');
  if (dot > i) return { base: head.slice(0, dot), timestamp: head.slice(dot + 1), rev, build };
  return { base: head.slice(0, i), timestamp: head.slice(i + 1), rev, build };
}

/** The 14-digit timestamp of pseudo-version v, unparsed. */
export function pseudoVersionTimestamp(v: string): string {
  return parsePseudoVersion(v).timestamp;
}

function daysIn(month: number, year: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** The commit time encoded in pseudo-version v (UTC). */
export function pseudoVersionTime(v: string): Date {
  const ts = parsePseudoVersion(v).timestamp;
  const year = Number(ts.slice(0, 4));
  const month = Number(ts.slice(4, 6));
  const day = Number(ts.slice(6, 8));
  const hour = Number(ts.slice(8, 10));
  const minute = Number(ts.slice(10, 12));
  const second = Number(ts.slice(12, 14));
  // time.Parse rejects out-of-range fields, including leap seconds and February 30th.
  if (month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || hour > 23 || minute > 59 || second > 59) {
    throw pseudoError(v, `malformed time ${quote(ts)}`);
  }
  const t = new Date(0);
  // setUTCFullYear, unlike Date.UTC, does not map years 0-99 to 1900-1999.
  t.setUTCFullYear(year, month - 1, day);
  t.setUTCHours(hour, minute, second, 0);
  return t;
}

/** The revision identifier (the short commit hash) of pseudo-version v. */
export function pseudoVersionRev(v: string): string {
  return parsePseudoVersion(v).rev;
}

/**
 * The tag pseudo-version v was derived from ("v1.2.3" for "v1.2.4-0.2023...-abc"), or "" when it
 * has none (the vX.0.0-... form). Throws for forms no tag can produce.
 */
export function pseudoVersionBase(v: string): string {
  const { base, build } = parsePseudoVersion(v);
  const pre = prerelease(base);
  if (pre === '') {
    if (build !== '') throw pseudoError(v, `lacks base version, but has build metadata ${quote(build)}`);
    return '';
  }
  if (pre === '-0') {
    const stem = base.slice(0, base.length - 2);
    const i = stem.lastIndexOf('.');
    const patch = decDecimal(stem.slice(i + 1));
    if (patch === '') throw pseudoError(v, `version before ${stem} would have negative patch number`);
    return stem.slice(0, i + 1) + patch + build;
  }
  // The remaining form is vX.Y.Z-pre.0.<ts>-<rev>: the base is the prerelease without its ".0".
  return base.slice(0, base.length - 2) + build;
}
