// Which module, import and file paths are valid (golang.org/x/mod/module): the rules that keep a
// path portable across case-insensitive file systems, Windows and URLs, plus the /vN major rules.
import { ModuleError } from './errors.js';
import { build as semverBuild, canonical, isValid, major as semverMajor } from './semver.js';
import { isLetter } from './unicode.js';
import { hasLoneSurrogate, quote, quoteRune } from './text.js';

const enum Kind {
  Module,
  Import,
  File,
}

/** Characters a module path element may hold: ASCII letters, digits and "-._~". */
function modPathOK(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e;
}

/** Import paths also allow "+" (historically used for binaries such as "c++"). */
function importPathOK(c: number): boolean {
  return modPathOK(c) || c === 0x2b;
}

/** File names allow Unicode letters, space and "!#$%&()+,-.=@[]^_{}~", never shell or OS specials. */
function fileNameOK(c: number): boolean {
  if (c < 0x80) {
    if ((c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39)) return true;
    switch (c) {
      case 0x21: // !
      case 0x23: // #
      case 0x24: // $
      case 0x25: // %
      case 0x26: // &
      case 0x28: // (
      case 0x29: // )
      case 0x2b: // +
      case 0x2c: // ,
      case 0x2d: // -
      case 0x2e: // .
      case 0x3d: // =
      case 0x40: // @
      case 0x5b: // [
      case 0x5d: // ]
      case 0x5e: // ^
      case 0x5f: // _
      case 0x7b: // {
      case 0x7d: // }
      case 0x7e: // ~
      case 0x20: // space
        return true;
      default:
        return false;
    }
  }
  return isLetter(c);
}

/** The lower-cased ASCII letter, or c unchanged. */
function lower(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c + 0x20 : c;
}

/**
 * Whether path[start:end] is a device name Windows reserves whatever the extension and case:
 * CON, PRN, AUX, NUL, COM1-9, LPT1-9. (Go compares with Unicode case folding, but no non-ASCII
 * character folds to a letter of these names, so ASCII folding is exact.)
 */
function isWindowsReserved(p: string, start: number, end: number): boolean {
  const n = end - start;
  if (n !== 3 && n !== 4) return false;
  const a = lower(p.charCodeAt(start));
  const b = lower(p.charCodeAt(start + 1));
  const c = lower(p.charCodeAt(start + 2));
  if (n === 3) {
    return (
      (a === 0x63 && b === 0x6f && c === 0x6e) || // con
      (a === 0x70 && b === 0x72 && c === 0x6e) || // prn
      (a === 0x61 && b === 0x75 && c === 0x78) || // aux
      (a === 0x6e && b === 0x75 && c === 0x6c) // nul
    );
  }
  const d = p.charCodeAt(start + 3);
  if (d < 0x31 || d > 0x39) return false;
  return (a === 0x63 && b === 0x6f && c === 0x6d) || (a === 0x6c && b === 0x70 && c === 0x74); // com, lpt
}

/** Checks one path element; returns the reason it is invalid, or undefined. */
function checkElem(p: string, start: number, end: number, kind: Kind): string | undefined {
  if (start === end) return 'empty path element';
  // One pass gathers what the checks need; they are then applied in Go's order, so the reason
  // reported for an element with several faults is the one Go reports.
  let allDots = true;
  let firstDot = -1;
  let bad = -1;
  for (let i = start; i < end; i++) {
    let c = p.charCodeAt(i);
    if (c === 0x2e) {
      if (firstDot < 0) firstDot = i;
      continue;
    }
    allDots = false;
    if (bad >= 0) continue;
    if (c >= 0xd800 && c <= 0xdbff) c = p.codePointAt(i) as number;
    const ok = kind === Kind.Module ? modPathOK(c) : kind === Kind.Import ? importPathOK(c) : fileNameOK(c);
    if (!ok) bad = i;
    if (c > 0xffff) i++;
  }
  if (allDots) return `invalid path element ${quote(p.slice(start, end))}`;
  if (kind === Kind.Module && p.charCodeAt(start) === 0x2e) return 'leading dot in path element';
  if (p.charCodeAt(end - 1) === 0x2e) return 'trailing dot in path element';
  if (bad >= 0) return `invalid char ${quoteRune(p.codePointAt(bad) as number)}`;

  // "short" is the element up to its first dot: what Windows treats as the base name.
  const shortEnd = firstDot < 0 ? end : firstDot;
  if (isWindowsReserved(p, start, shortEnd)) {
    return `${quote(p.slice(start, shortEnd))} disallowed as path element component on Windows`;
  }
  if (kind === Kind.File) return undefined;

  // An element ending in "~" and digits looks like a Windows 8.3 short name (PROGRA~1), which
  // could alias another path on such a file system.
  let j = shortEnd;
  while (j > start && p.charCodeAt(j - 1) >= 0x30 && p.charCodeAt(j - 1) <= 0x39) j--;
  if (j < shortEnd && j > start && p.charCodeAt(j - 1) === 0x7e) return 'trailing tilde and digits in path element';
  return undefined;
}

/** The shared checks of module, import and file paths; returns the reason, or undefined. */
function checkGeneralPath(p: string, kind: Kind): string | undefined {
  const err = checkWellFormedPath(p, kind);
  // Go rejects invalid UTF-8 before anything else. An unpaired surrogate (our counterpart) is
  // never a valid character, so it always fails the checks below: looking for one only once
  // something failed saves a pass over every valid path and still reports what Go reports.
  if (err !== undefined && hasLoneSurrogate(p)) return 'invalid UTF-8';
  return err;
}

function checkWellFormedPath(p: string, kind: Kind): string | undefined {
  if (p === '') return 'empty string';
  if (p.charCodeAt(0) === 0x2d && kind !== Kind.File) return 'leading dash';
  if (p.includes('//')) return 'double slash';
  if (p.charCodeAt(p.length - 1) === 0x2f) return 'trailing slash';
  let start = 0;
  for (;;) {
    const slash = p.indexOf('/', start);
    const end = slash < 0 ? p.length : slash;
    const err = checkElem(p, start, end, kind);
    if (err !== undefined) return err;
    if (slash < 0) return undefined;
    start = slash + 1;
  }
}

/** Why p is not a valid module path, or undefined when it is. */
export function modulePathError(p: string): string | undefined {
  const err = checkGeneralPath(p, Kind.Module);
  if (err !== undefined) return err;
  let i = p.indexOf('/');
  if (i < 0) i = p.length;
  if (i === 0) return 'leading slash';
  let dot = false;
  let bad = -1;
  for (let k = 0; k < i; k++) {
    const c = p.charCodeAt(k);
    if (c === 0x2e) dot = true;
    // The first element is a host name, and must be lower case so it has one spelling.
    else if (bad < 0 && !((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d)) bad = k;
  }
  if (!dot) return 'missing dot in first path element';
  if (p.charCodeAt(0) === 0x2d) return 'leading dash in first path element';
  if (bad >= 0) return `invalid char ${quoteRune(p.charCodeAt(bad))} in first path element`;
  if (p.startsWith('gopkg.in/') ? !splitGopkgIn(p).ok : pathMajorStart(p) === -2) return 'invalid version';
  return undefined;
}

/** Reports whether p is a valid module path (checkPath without the exception). */
export function isValidModulePath(p: string): boolean {
  return modulePathError(p) === undefined;
}

/**
 * Checks that p is a valid module path (module.CheckPath): a valid import path whose first
 * element is a lower-case host name with a dot, with no element starting with a dot, and whose
 * /vN (or gopkg.in .vN) suffix is well formed. Throws ModuleError.
 */
export function checkPath(p: string): void {
  const err = modulePathError(p);
  if (err !== undefined) throw new ModuleError(`malformed module path ${quote(p)}: ${err}`, { path: p });
}

/** Checks that p is a valid package import path (module.CheckImportPath). Throws ModuleError. */
export function checkImportPath(p: string): void {
  const err = checkGeneralPath(p, Kind.Import);
  if (err !== undefined) throw new ModuleError(`malformed import path ${quote(p)}: ${err}`, { path: p });
}

/** Why p is not a valid file path in a module, or undefined when it is. */
export function filePathError(p: string): string | undefined {
  return checkGeneralPath(p, Kind.File);
}

/** Checks that p is a valid slash-separated file path in a module (module.CheckFilePath). Throws ModuleError. */
export function checkFilePath(p: string): void {
  const err = checkGeneralPath(p, Kind.File);
  if (err !== undefined) throw new ModuleError(`malformed file path ${quote(p)}: ${err}`);
}

/**
 * Why v is not a valid file path element (the check versions get before they are escaped into
 * a URL or file name), or undefined.
 */
export function fileElemError(v: string): string | undefined {
  const err = checkElem(v, 0, v.length, Kind.File);
  if (err === undefined || !hasLoneSurrogate(v)) return err;
  // An unpaired surrogate stands for bytes that are not UTF-8, which Go's checks see as U+FFFD.
  const w = v.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
  return checkElem(w, 0, w.length, Kind.File);
}

export interface PathVersionSplit {
  /** The path without its major version suffix. */
  prefix: string;
  /** "" or the suffix itself: "/v2", or for gopkg.in ".v1", ".v2-unstable". */
  pathMajor: string;
  /** false when the last element looks like a malformed suffix (/v1, /v01, /v1.2, gopkg.in without .vN). */
  ok: boolean;
}

/**
 * Where a "/vN" major suffix starts in p (not a gopkg.in path): its index, -1 when p has no
 * suffix, -2 when the last element looks like a malformed one (/v0, /v1, /v01, /v1.2).
 */
function pathMajorStart(p: string): number {
  let i = p.length;
  let dot = false;
  for (; i > 0; i--) {
    const c = p.charCodeAt(i - 1);
    if (c === 0x2e) dot = true;
    else if (c < 0x30 || c > 0x39) break;
  }
  if (i <= 1 || i === p.length || p.charCodeAt(i - 1) !== 0x76 || p.charCodeAt(i - 2) !== 0x2f) return -1;
  // p[i-2:] is "/v" and digits or dots.
  if (dot || p.length - (i - 2) <= 2 || p.charCodeAt(i) === 0x30 || (p.length === i + 1 && p.charCodeAt(i) === 0x31)) {
    return -2;
  }
  return i - 2;
}

/** Splits p into prefix + pathMajor (module.SplitPathVersion). */
export function splitPathVersion(p: string): PathVersionSplit {
  if (p.startsWith('gopkg.in/')) return splitGopkgIn(p);
  const at = pathMajorStart(p);
  if (at === -1) return { prefix: p, pathMajor: '', ok: true };
  if (at === -2) return { prefix: p, pathMajor: '', ok: false };
  return { prefix: p.slice(0, at), pathMajor: p.slice(at), ok: true };
}

/** splitPathVersion for gopkg.in paths, which must end in .vN or .vN-unstable (N may be 0 or 1). */
export function splitGopkgIn(p: string): PathVersionSplit {
  if (!p.startsWith('gopkg.in/')) return { prefix: p, pathMajor: '', ok: false };
  let i = p.length;
  if (p.endsWith('-unstable')) i -= '-unstable'.length;
  while (i > 0 && p.charCodeAt(i - 1) >= 0x30 && p.charCodeAt(i - 1) <= 0x39) i--;
  if (i <= 1 || p.charCodeAt(i - 1) !== 0x76 || p.charCodeAt(i - 2) !== 0x2e) {
    return { prefix: p, pathMajor: '', ok: false };
  }
  const pathMajor = p.slice(i - 2);
  if (pathMajor.length <= 2 || (pathMajor.charCodeAt(2) === 0x30 && pathMajor !== '.v0')) {
    return { prefix: p, pathMajor: '', ok: false };
  }
  return { prefix: p.slice(0, i - 2), pathMajor, ok: true };
}

/** Why semantic version v does not fit the path's major suffix, or undefined (module.CheckPathMajor). */
function pathMajorError(v: string, pathMajor: string): string | undefined {
  let pm = pathMajor;
  if (pm.startsWith('.v') && pm.endsWith('-unstable')) pm = pm.slice(0, pm.length - '-unstable'.length);
  // gopkg.in/x.v1 once got v0.0.0 pseudo-versions from a go command bug; they are still accepted.
  if (v.startsWith('v0.0.0-') && pm === '.v1') return undefined;
  const m = semverMajor(v);
  let want = pm;
  if (pm === '') {
    if (m === 'v0' || m === 'v1' || semverBuild(v) === '+incompatible') return undefined;
    want = 'v0 or v1';
  } else if (pm.charCodeAt(0) === 0x2f || pm.charCodeAt(0) === 0x2e) {
    if (m === pm.slice(1)) return undefined;
    want = pm.slice(1);
  }
  return `should be ${want}, not ${m}`;
}

/** Reports whether semantic version v fits the major suffix pathMajor. */
export function matchPathMajor(v: string, pathMajor: string): boolean {
  return pathMajorError(v, pathMajor) === undefined;
}

/** Throws ModuleError ("version "v2.0.0" invalid: should be v0 or v1, not v2") unless v fits pathMajor. */
export function checkPathMajor(v: string, pathMajor: string): void {
  const err = pathMajorError(v, pathMajor);
  if (err !== undefined) throw new ModuleError(`version ${quote(v)} invalid: ${err}`, { version: v });
}

/**
 * The major version tag prefix a suffix implies ("/v2" -> "v2", ".v1-unstable" -> "v1"; "" for no
 * suffix, which allows v0 and v1). Go panics on a malformed suffix; this throws ModuleError.
 */
export function pathMajorPrefix(pathMajor: string): string {
  if (pathMajor === '') return '';
  const c = pathMajor.charCodeAt(0);
  if (c !== 0x2f && c !== 0x2e) throw new ModuleError(`pathMajor suffix ${pathMajor} lacks separator`);
  let pm = pathMajor;
  if (pm.startsWith('.v') && pm.endsWith('-unstable')) pm = pm.slice(0, pm.length - '-unstable'.length);
  const m = pm.slice(1);
  if (m !== semverMajor(m)) throw new ModuleError(`pathMajor suffix ${pathMajor} is not a valid major version`);
  return m;
}

/**
 * Checks that version is a valid semantic version for module path p (module.Check): p must be
 * valid and the version's major must fit its suffix ("example.com/m/v2" takes only v2.x.y).
 */
export function check(p: string, version: string): void {
  checkPath(p);
  if (!isValid(version)) {
    throw new ModuleError(`${p}@${version}: invalid version: not a semantic version`, { path: p, version });
  }
  const err = pathMajorError(version, splitPathVersion(p).pathMajor);
  if (err !== undefined) throw new ModuleError(`${p}@${version}: invalid version: ${err}`, { path: p, version });
}

/** semver.canonical, except that a "+incompatible" build suffix is kept (module.CanonicalVersion). */
export function canonicalVersion(v: string): string {
  const cv = canonical(v);
  return semverBuild(v) === '+incompatible' ? cv + '+incompatible' : cv;
}
