// GOPRIVATE-style patterns: Go's path.Match, and module.MatchPrefixPatterns (what cmd/go uses for
// GOPRIVATE, GONOPROXY, GONOSUMDB and GOINSECURE). path.Match works on UTF-8 bytes and, behind a
// "*", even tries offsets inside a multi-byte character; to give the same answers the matcher here
// runs over byte strings (one UTF-16 unit per byte), which for ASCII is the string itself.
import { ModuleError } from './errors.js';
import { canonicalVersion } from './path.js';
import { isValid } from './semver.js';
import { decodeRune, RUNE_ERROR, toByteString } from './text.js';

class BadPattern extends Error {}
const BAD_PATTERN = new BadPattern('syntax error in pattern');

const STAR = 0x2a;
const QUESTION = 0x3f;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const BACKSLASH = 0x5c;
const CARET = 0x5e;
const HYPHEN = 0x2d;
const SLASH = 0x2f;

// scanChunk results, kept in module state so the matcher allocates nothing.
let chunkStar = false;
let chunkEnd = 0;

/** Skips leading stars from i (recording whether there were any) and finds the end of the next chunk. */
function scanChunk(p: string, i: number): number {
  chunkStar = false;
  while (i < p.length && p.charCodeAt(i) === STAR) {
    i++;
    chunkStar = true;
  }
  let inRange = false;
  let j = i;
  for (; j < p.length; j++) {
    const c = p.charCodeAt(j);
    if (c === BACKSLASH) {
      if (j + 1 < p.length) j++;
    } else if (c === LBRACKET) {
      inRange = true;
    } else if (c === RBRACKET) {
      inRange = false;
    } else if (c === STAR && !inRange) {
      break;
    }
  }
  chunkEnd = j;
  return i;
}

// getEsc result: the next pattern index.
let escNext = 0;

/** Reads one possibly escaped character of a [...] class at i; throws BAD_PATTERN like getEsc. */
function getEsc(p: string, i: number, end: number): number {
  if (i >= end) throw BAD_PATTERN;
  let c = p.charCodeAt(i);
  if (c === HYPHEN || c === RBRACKET) throw BAD_PATTERN;
  if (c === BACKSLASH) {
    i++;
    if (i >= end) throw BAD_PATTERN;
  }
  // A chunk ends at an ASCII "*" or the pattern's end, so a rune never straddles it.
  const d = decodeRune(p, i);
  c = d >> 3;
  const n = d & 7;
  if (c === RUNE_ERROR && n === 1) throw BAD_PATTERN;
  escNext = i + n;
  if (escNext >= end) throw BAD_PATTERN;
  return c;
}

/**
 * Matches chunk p[start:end] (no stars) against the start of s[si:]. Returns the index in s after
 * the match, or -1. Throws BAD_PATTERN for bad syntax anywhere in the chunk, matched or not.
 */
function matchChunk(p: string, start: number, end: number, s: string, si: number): number {
  let failed = false;
  let i = start;
  while (i < end) {
    failed = failed || si >= s.length;
    const c = p.charCodeAt(i);
    if (c === LBRACKET) {
      let r = 0;
      if (!failed) {
        const d = decodeRune(s, si);
        r = d >> 3;
        si += d & 7;
      }
      i++;
      let negated = false;
      if (i < end && p.charCodeAt(i) === CARET) {
        negated = true;
        i++;
      }
      let match = false;
      let nrange = 0;
      for (;;) {
        if (i < end && p.charCodeAt(i) === RBRACKET && nrange > 0) {
          i++;
          break;
        }
        const lo = getEsc(p, i, end);
        i = escNext;
        let hi = lo;
        if (p.charCodeAt(i) === HYPHEN) {
          hi = getEsc(p, i + 1, end);
          i = escNext;
        }
        match = match || (lo <= r && r <= hi);
        nrange++;
      }
      failed = failed || match === negated;
    } else if (c === QUESTION) {
      if (!failed) {
        failed = s.charCodeAt(si) === SLASH;
        si += decodeRune(s, si) & 7;
      }
      i++;
    } else {
      if (c === BACKSLASH) {
        i++;
        if (i >= end) throw BAD_PATTERN;
      }
      if (!failed) {
        failed = p.charCodeAt(i) !== s.charCodeAt(si);
        si++;
      }
      i++;
    }
  }
  return failed ? -1 : si;
}

/** path.Match over byte strings; throws BAD_PATTERN where Go returns ErrBadPattern. */
function matchBytes(p: string, name: string): boolean {
  let pi = 0;
  let ni = 0;
  outer: while (pi < p.length) {
    const cs = scanChunk(p, pi);
    const star = chunkStar;
    const ce = chunkEnd;
    pi = ce;
    if (star && cs === ce) {
      // A trailing star matches the rest of the name, but never across a slash.
      return name.indexOf('/', ni) < 0;
    }
    const t = matchChunk(p, cs, ce, name, ni);
    if (t >= 0 && (t === name.length || pi < p.length)) {
      ni = t;
      continue;
    }
    if (star) {
      // The star takes one more byte at a time (Go tries every byte offset, even inside a rune).
      for (let i = ni; i < name.length && name.charCodeAt(i) !== SLASH; i++) {
        const u = matchChunk(p, cs, ce, name, i + 1);
        if (u >= 0) {
          if (pi === p.length && u < name.length) continue;
          ni = u;
          continue outer;
        }
      }
    }
    // No match; but like Go, still report a syntax error in the rest of the pattern.
    while (pi < p.length) {
      const rs = scanChunk(p, pi);
      pi = chunkEnd;
      matchChunk(p, rs, chunkEnd, name, name.length);
    }
    return false;
  }
  return ni === name.length;
}

/**
 * Go's path.Match: reports whether name matches the shell pattern ("*" stops at "/", "?", "[a-z]",
 * "[^...]", "\\" escapes). Throws ModuleError("syntax error in pattern") where Go returns
 * path.ErrBadPattern.
 */
export function pathMatch(pattern: string, name: string): boolean {
  try {
    return matchBytes(toByteString(pattern), toByteString(name));
  } catch (err) {
    if (err === BAD_PATTERN) throw new ModuleError('syntax error in pattern');
    throw err;
  }
}

function matchOrFalse(pattern: string, name: string): boolean {
  try {
    return matchBytes(pattern, name);
  } catch (err) {
    if (err === BAD_PATTERN) return false;
    throw err;
  }
}

function countSlashes(s: string): number {
  let n = 0;
  for (let i = s.indexOf('/'); i >= 0; i = s.indexOf('/', i + 1)) n++;
  return n;
}

/**
 * The first n+1 slash-separated elements of target, or undefined if it has fewer. A glob with n
 * slashes is matched against exactly that prefix.
 */
function leadingElements(target: string, n: number): string | undefined {
  let i = -1;
  for (let k = 0; k <= n; k++) {
    i = target.indexOf('/', i + 1);
    if (i < 0) return k === n ? target : undefined;
  }
  return target.slice(0, i);
}

/**
 * module.MatchPrefixPatterns: reports whether some leading elements of target match one of the
 * comma-separated globs. Spaces are not trimmed ("a.com, b.com" never matches b.com), a trailing
 * slash is ignored, empty and malformed globs never match.
 */
export function matchPrefixPatterns(globs: string, target: string): boolean {
  let rest = globs;
  while (rest !== '') {
    const comma = rest.indexOf(',');
    let glob = comma < 0 ? rest : rest.slice(0, comma);
    rest = comma < 0 ? '' : rest.slice(comma + 1);
    if (glob.endsWith('/')) glob = glob.slice(0, -1);
    if (glob === '') continue;
    const prefix = leadingElements(target, countSlashes(glob));
    if (prefix !== undefined && matchOrFalse(toByteString(glob), toByteString(prefix))) return true;
  }
  return false;
}

/** A compiled GOPRIVATE-style list: reports whether a module path matches it. */
export type PrefixMatcher = (target: string) => boolean;

interface CompiledGlob {
  /** The glob as a byte string. */
  glob: string;
  slashes: number;
  /** How to decide: plain comparison, "*" + literal suffix, or the general matcher. */
  form: 'literal' | 'star-suffix' | 'general';
  /** literal: the glob; star-suffix: the text after the star; general: the text before the first metacharacter. */
  text: string;
}

const META = /[*?[\\]/;

/**
 * Compiles globs once for matchPrefixPatterns semantics. Malformed globs are dropped up front:
 * whether a glob is malformed does not depend on the name (path.Match parses every chunk it
 * reaches, and reports an error in any chunk it does not), so they can never match.
 */
export function compilePrefixPatterns(globs: string): PrefixMatcher {
  const compiled: CompiledGlob[] = [];
  for (let glob of globs.split(',')) {
    if (glob.endsWith('/')) glob = glob.slice(0, -1);
    if (glob === '') continue;
    const bytes = toByteString(glob);
    try {
      matchBytes(bytes, '');
    } catch (err) {
      if (err === BAD_PATTERN) continue;
      throw err;
    }
    const slashes = countSlashes(glob);
    const meta = bytes.search(META);
    if (meta < 0) {
      compiled.push({ glob: bytes, slashes, form: 'literal', text: bytes });
    } else if (meta === 0 && bytes.charCodeAt(0) === STAR && !META.test(bytes.slice(1)) && bytes.length > 1) {
      // "*.corp.example.com": a trailing literal chunk after one star.
      compiled.push({ glob: bytes, slashes, form: 'star-suffix', text: bytes.slice(1) });
    } else {
      compiled.push({ glob: bytes, slashes, form: 'general', text: bytes.slice(0, meta) });
    }
  }
  if (compiled.length === 0) return () => false;
  return (target: string): boolean => {
    for (const g of compiled) {
      const prefix = leadingElements(target, g.slashes);
      if (prefix === undefined) continue;
      const name = toByteString(prefix);
      switch (g.form) {
        case 'literal':
          if (name === g.text) return true;
          break;
        case 'star-suffix': {
          // The star takes what precedes the literal, which must not contain a slash.
          const head = name.length - g.text.length;
          if (head >= 0 && name.endsWith(g.text) && (head === 0 || name.lastIndexOf('/', head - 1) < 0)) return true;
          break;
        }
        default:
          // Text before the first metacharacter must match literally; most names fail right there.
          if (name.startsWith(g.text) && matchBytes(g.glob, name)) return true;
      }
    }
    return false;
  };
}

/** One module pattern, optionally narrowed to a version: "example.com/team/*", "example.com/m@v1.2.3". */
export interface PatternAtVersion {
  /** One GOPRIVATE-style glob or module path prefix, without a trailing slash. */
  pattern: string;
  /** A canonical version; absent: every version. */
  version?: string;
}

/**
 * Reads "glob[@version]" as an operator writes a pin: one glob (a list would be ambiguous to
 * remove again), no spaces (MatchPrefixPatterns would never match them), a version only in its
 * canonical form (the only form a module file is stored under). Throws ModuleError with the fix.
 */
export function parsePatternAtVersion(text: string): PatternAtVersion {
  const at = text.lastIndexOf('@');
  let pattern = at >= 0 ? text.slice(0, at) : text;
  const version = at >= 0 ? text.slice(at + 1) : undefined;
  while (pattern.endsWith('/')) pattern = pattern.slice(0, -1);
  const why = (msg: string): ModuleError => new ModuleError(`invalid pattern ${JSON.stringify(text)}: ${msg}`);
  if (pattern === '') throw why('expected a module path or GOPRIVATE-style glob such as example.com/team/*');
  if (/[\s,]/.test(pattern)) throw why('one module path or glob, without spaces or commas');
  if (pattern.startsWith('/') || pattern.includes('//')) throw why('expected a module path or glob such as example.com/team/*, without empty path elements');
  try {
    matchBytes(toByteString(pattern), '');
  } catch (err) {
    if (err === BAD_PATTERN) throw why('glob syntax error (an unclosed [ or a trailing \\)');
    throw err;
  }
  if (version === undefined) return { pattern };
  if (!isValid(version) || canonicalVersion(version) !== version) throw why(`"${version}" is not a canonical version such as v1.2.3`);
  return { pattern, version };
}

/** Why text is not a pattern parsePatternAtVersion takes, or null. */
export function patternAtVersionProblem(text: string): string | null {
  try {
    parsePatternAtVersion(text);
    return null;
  } catch (err) {
    if (err instanceof ModuleError) return err.message;
    throw err;
  }
}
