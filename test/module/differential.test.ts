// The proof that src/module behaves as golang.org/x/mod does: every hand-picked case and a few
// thousand seeded random ones go to test/gotools/modcheck (which calls x/mod and the standard
// library), and our answer must agree on success vs error and, on success, on the value.
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { runGoTool } from '../helpers/gotools.js';
import * as mod from '../../src/module/index.js';
import { filePathError } from '../../src/module/path.js';
import { AFTER_UNICODE_15 } from '../../src/module/unicode.js';
import {
  GOMODS,
  MATCH_CASES,
  NAME_ALPHABET,
  PATHS,
  PATTERN_ALPHABET,
  PREFIX_CASES,
  PSEUDO_VERSIONS,
  VERSIONS,
  pick,
  randomGoMod,
  randomPath,
  randomPseudo,
  randomSemver,
  randomString,
  rng,
} from './corpus.js';

interface Case {
  op: string;
  args: string[];
  /** Our answer: a value, or a thrown ModuleError for Go's error. */
  ours: () => unknown;
  /** Compare only success vs error (for functions that return nothing). */
  okOnly?: boolean;
  /** Do not hold the error text to Go's (inputs Go cannot receive exactly, see lone surrogates). */
  anyText?: boolean;
}

interface Answer {
  ok: boolean;
  value?: unknown;
  err?: string;
}

function ourAnswer(c: Case): Answer {
  try {
    const v = c.ours();
    // A JSON round trip gives our value the shape Go's encoder gives its own (no undefined keys).
    return { ok: true, value: v === undefined ? undefined : JSON.parse(JSON.stringify(v)) };
  } catch (err) {
    if (err instanceof mod.ModuleError) return { ok: false, err: err.message };
    throw new Error(`${c.op}(${JSON.stringify(c.args)}) threw a non-ModuleError: ${String(err)}`, { cause: err });
  }
}

function goModSummary(data: Buffer, strict: boolean): unknown {
  const f = mod.parseGoMod(data, 'go.mod', { strict });
  return {
    module: f.module,
    go: f.go,
    toolchain: f.toolchain,
    godebug: f.godebug,
    require: f.require,
    exclude: f.exclude,
    replace: f.replace,
    retract: f.retract,
    tool: f.tool,
    ignore: f.ignore,
  };
}

function buildCases(): Case[] {
  const cases: Case[] = [];
  const add = (op: string, args: string[], ours: () => unknown, okOnly = false, anyText = false): void => {
    cases.push({ op, args, ours, okOnly, anyText });
  };
  // MODCHECK_SEED explores other corners; the default keeps runs reproducible.
  const r = rng(Number(process.env.MODCHECK_SEED ?? 20260806));

  // Paths and path elements.
  const paths = [...PATHS];
  for (let i = 0; i < 3000; i++) paths.push(randomPath(r));
  // Escaped spellings, valid and not, so unescape sees both.
  for (let i = 0; i < 400; i++)
    paths.push(pick(r, ['github.com/', 'x.y/', '']) + randomString(r, ['a', '!', '!a', '!z', '!A', 'B', '.', '/', '-', '~1', '\u00e9'], 6));
  for (const p of paths) {
    add('checkPath', [p], () => mod.checkPath(p), true);
    add('checkImportPath', [p], () => mod.checkImportPath(p), true);
    add('checkFilePath', [p], () => mod.checkFilePath(p), true);
    add('isValidModulePath', [p], () => mod.isValidModulePath(p));
    add('escapePath', [p], () => mod.escapePath(p));
    add('unescapePath', [p], () => mod.unescapePath(p));
    add('escapeVersion', [p], () => mod.escapeVersion(p));
    add('unescapeVersion', [p], () => mod.unescapeVersion(p));
    add('splitPathVersion', [p], () => mod.splitPathVersion(p));
    add('splitGopkgIn', [p], () => mod.splitGopkgIn(p));
  }

  // Unpaired surrogates are what JS has for bytes that are not UTF-8; Go receives them as U+FFFD.
  // We report "invalid UTF-8" where Go reports the U+FFFD, so only success vs error is compared.
  for (const p of ['x.y/a\ud800', 'x.y/\udc00b', '\ud800', 'v1.0.0-\ud800', '\ud800.', 'a\ud83d']) {
    add('checkPath', [p], () => mod.checkPath(p), true, true);
    add('checkImportPath', [p], () => mod.checkImportPath(p), true, true);
    add('checkFilePath', [p], () => mod.checkFilePath(p), true, true);
    add('escapePath', [p], () => mod.escapePath(p), false, true);
    add('unescapePath', [p], () => mod.unescapePath(p), false, true);
    add('escapeVersion', [p], () => mod.escapeVersion(p), false, true);
    add('unescapeVersion', [p], () => mod.unescapeVersion(p), false, true);
    add('semver.isValid', [p], () => mod.semver.isValid(p));
    add('pathMatch', [p, p], () => mod.pathMatch(p, p));
    add('pathMatch', ['*\ufffd*', p], () => mod.pathMatch('*\ufffd*', p));
    add('matchPrefixPatterns', [p, p], () => mod.matchPrefixPatterns(p, p));
  }

  // Versions: semver, module versions, pseudo-versions.
  const versions = [...VERSIONS, ...PSEUDO_VERSIONS];
  for (let i = 0; i < 2500; i++) versions.push(randomSemver(r));
  for (let i = 0; i < 1500; i++) versions.push(randomPseudo(r));
  for (const v of versions) {
    add('semver.isValid', [v], () => mod.semver.isValid(v));
    add('semver.canonical', [v], () => mod.semver.canonical(v));
    add('semver.major', [v], () => mod.semver.major(v));
    add('semver.majorMinor', [v], () => mod.semver.majorMinor(v));
    add('semver.prerelease', [v], () => mod.semver.prerelease(v));
    add('semver.build', [v], () => mod.semver.build(v));
    add('canonicalVersion', [v], () => mod.canonicalVersion(v));
    add('escapeVersion', [v], () => mod.escapeVersion(v));
    add('unescapeVersion', [v], () => mod.unescapeVersion(v));
    add('isPseudoVersion', [v], () => mod.isPseudoVersion(v));
    add('isZeroPseudoVersion', [v], () => mod.isZeroPseudoVersion(v));
    add('pseudoVersionBase', [v], () => mod.pseudoVersionBase(v));
    add('pseudoVersionRev', [v], () => mod.pseudoVersionRev(v));
    add('pseudoVersionTime', [v], () => mod.pseudoVersionTime(v).getTime() / 1000);
  }
  for (let i = 0; i < 3000; i++) {
    const v = pick(r, versions);
    const w = i % 3 === 0 ? mod.semver.canonical(v) + pick(r, ['', '+x', '-0', '-a', '-1', '.0']) : pick(r, versions);
    add('semver.compare', [v, w], () => mod.semver.compare(v, w));
    add('semver.max', [v, w], () => mod.semver.max(v, w));
  }
  for (let i = 0; i < 300; i++) {
    const n = Math.floor(r() * 12);
    const list = Array.from({ length: n }, () => pick(r, versions));
    add('semver.sort', list, () => mod.semver.sort([...list]));
  }

  // Path/version agreement.
  const checkPaths = [
    'example.com/m',
    'example.com/m/v2',
    'example.com/m/v3',
    'gopkg.in/yaml.v1',
    'gopkg.in/yaml.v2',
    'gopkg.in/yaml.v0',
    'gopkg.in/yaml.v2-unstable',
    'gopkg.in/yaml',
    'example.com/m/v1',
    'Example.com/m',
  ];
  // Most random strings are not versions at all; draw half the pairs from the valid ones.
  const valid = versions.filter((v) => mod.semver.isValid(v));
  for (let i = 0; i < 3000; i++) {
    const p = i % 2 === 0 ? pick(r, checkPaths) : pick(r, paths);
    const v = i % 4 < 2 ? pick(r, valid) : pick(r, versions);
    add('check', [p, v], () => mod.check(p, v), true);
  }
  const pathMajors = [
    '',
    '/v2',
    '/v3',
    '/v10',
    '.v0',
    '.v1',
    '.v2',
    '.v1-unstable',
    '.v2-unstable',
    'v2',
    '/v1',
    '/v0',
    '/v02',
    'x',
    '/',
    '.',
    '/v2-unstable',
    '.vx',
  ];
  for (const pm of pathMajors) add('pathMajorPrefix', [pm], () => mod.pathMajorPrefix(pm));
  for (let i = 0; i < 2000; i++) {
    const v = i % 2 === 0 ? pick(r, valid) : pick(r, versions);
    const pm = pick(r, pathMajors);
    add('matchPathMajor', [v, pm], () => mod.matchPathMajor(v, pm));
    add('checkPathMajor', [v, pm], () => mod.checkPathMajor(v, pm), true);
  }

  // Building pseudo-versions.
  for (const m of ['', 'v0', 'v1', 'v2', 'v10']) add('zeroPseudoVersion', [m], () => mod.zeroPseudoVersion(m));
  const seconds = [0, -62135596800, 253402300799, 253402300800, -62167219200, -62198755200, 1573265971, 951782400];
  for (let i = 0; i < 1500; i++) {
    const sec = i < seconds.length ? (seconds[i] as number) : Math.floor((r() * 2 - 1) * 1e11);
    const major = pick(r, ['', 'v0', 'v1', 'v2']);
    const older = pick(r, [...VERSIONS, '', 'v1.2.9', 'v1.2.99', 'v1.9.9-pre', 'v2.0.0+incompatible', 'v1.2.3+meta']);
    const rev = pick(r, ['daa7c04131f5', '000000000000', 'abc']);
    add('pseudoVersion', [major, older, String(sec), rev], () => mod.pseudoVersion(major, older, new Date(sec * 1000), rev));
  }

  // Patterns.
  const matchCases: [string, string][] = [...MATCH_CASES];
  for (let i = 0; i < 3000; i++) matchCases.push([randomString(r, PATTERN_ALPHABET, 6), randomString(r, NAME_ALPHABET, 6)]);
  for (let i = 0; i < 1000; i++) {
    // Names spelled from the pattern, so that matches (and near misses) are common.
    const p = randomString(r, ['a', 'b', '\u00e9', '\u20ac', '/', '*', '?', '[a-c]', '[^a]', '[\u00e0-\u00ff]', '\\*'], 5);
    const n = p
      .replace(/\[[^\]]*\]/g, () => pick(r, ['a', 'b', 'c', '\u00e9', '\u20ac']))
      .replace(/\\\*/g, '*')
      .replace(/[*?]/g, () => pick(r, ['', 'a', '\u00e9', '\u20ac\u20ac', '/']));
    matchCases.push([p, n]);
  }
  for (const [p, n] of matchCases) add('pathMatch', [p, n], () => mod.pathMatch(p, n));
  const prefixCases: [string, string][] = [...PREFIX_CASES];
  for (let i = 0; i < 1000; i++) {
    // A target made from the glob itself (metacharacters replaced) is likely to match, or nearly.
    const glob = randomString(r, ['a', 'b', '.com', '/', '*', '?', '[a-b]', '[^a]', 'x'], 5);
    const target = glob.replace(/\[\^?a(-b)?\]/g, () => pick(r, ['a', 'b', 'c'])).replace(/[*?]/g, () => pick(r, ['', 'a', 'bb', '/']));
    prefixCases.push([pick(r, ['', 'x.y,', ' ']) + glob + pick(r, ['', '/', ',z']), target + pick(r, ['', '/', '/more', 'x'])]);
  }
  for (let i = 0; i < 2000; i++) {
    const globs = Array.from({ length: 1 + Math.floor(r() * 3) }, () => randomString(r, [...PATTERN_ALPHABET, ' ', '.com'], 5)).join(',');
    prefixCases.push([globs, randomString(r, [...NAME_ALPHABET, '/', '.com'], 7)]);
  }
  for (const [g, t] of prefixCases) {
    add('matchPrefixPatterns', [g, t], () => mod.matchPrefixPatterns(g, t));
    add('matchPrefixPatterns', [g, t], () => mod.compilePrefixPatterns(g)(t));
  }

  // go.mod files, lax (a dependency's go.mod) and strict.
  const gomods = [...GOMODS];
  for (let i = 0; i < 2500; i++) gomods.push(randomGoMod(r));
  // Single characters inside a token reach the lexer's Unicode tables.
  for (let i = 0; i < 1500; i++) {
    let cp = Math.floor(r() * 0x110000);
    if (i % 3 === 0) cp = Math.floor(r() * 0x3000);
    if ((cp >= 0xd800 && cp <= 0xdfff) || cp === 0) cp = 0x41;
    gomods.push(`module a${String.fromCodePoint(cp)}b\n`);
  }
  // Around each range of characters that Go's Unicode 15 does not know yet.
  for (const cp of AFTER_UNICODE_15.flatMap((x, k) => (k % 2 === 0 ? [x - 1, x] : [x, x + 1]))) {
    gomods.push(`module a${String.fromCodePoint(cp)}b\n`);
    const elem = `a${String.fromCodePoint(cp)}`;
    add('checkFilePath', [elem], () => mod.checkFilePath(elem), true);
    add('escapeVersion', [elem], () => mod.escapeVersion(elem));
    add('unescapeVersion', [elem], () => mod.unescapeVersion(elem));
  }
  for (const text of gomods) {
    const data = Buffer.from(text, 'utf8');
    const b64 = data.toString('base64');
    add('parseGoMod', [b64, 'lax'], () => goModSummary(data, false));
    add('parseGoMod', [b64, 'strict'], () => goModSummary(data, true));
    add('modulePath', [b64], () => mod.modulePathOf(data));
  }
  // modfile.ModulePath on bytes that are not UTF-8 (it is lenient; parseGoMod refuses them on purpose).
  for (const bytes of [
    [0x6d, 0x6f, 0x64, 0x75, 0x6c, 0x65, 0x20, 0x61, 0xff, 0x62],
    [0x6d, 0x6f, 0x64, 0x75, 0x6c, 0x65, 0x20, 0xe2, 0x82, 0x0a],
    [0x2f, 0x2f, 0xc0, 0x0a, 0x6d, 0x6f, 0x64, 0x75, 0x6c, 0x65, 0x20, 0x22, 0x78, 0xf0, 0x22],
  ]) {
    const data = Buffer.from(bytes);
    add('modulePath', [data.toString('base64')], () => mod.modulePathOf(data));
  }
  return cases;
}

/**
 * Go's error text as ours words it: multi-error go.mod messages are joined on one line, and where
 * Go panics (PathMajorPrefix) our ModuleError says the same without the panic framing.
 */
function goWording(op: string, err: string): string {
  if (op === 'pathMajorPrefix')
    return err
      .replace(/^panic: /, '')
      .replace(/ ?passed to PathMajorPrefix/, '')
      .replace(/(\S)is not/, '$1 is not');
  return err.replaceAll('\n\t or', ' or').replaceAll('\n', '; ');
}

describe('differential against golang.org/x/mod', () => {
  it('agrees with Go on every case', async () => {
    const cases = buildCases();
    const input = cases.map((c) => JSON.stringify({ op: c.op, args: c.args })).join('\n') + '\n';
    const lines = (await runGoTool('modcheck', [], input)).trimEnd().split('\n');
    expect(lines.length).toBe(cases.length);

    const mismatches: string[] = [];
    const counts = new Map<string, number>();
    cases.forEach((c, i) => {
      counts.set(c.op, (counts.get(c.op) ?? 0) + 1);
      const go = JSON.parse(lines[i] as string) as Answer;
      const ours = ourAnswer(c);
      const same = go.ok === ours.ok && (c.okOnly || !go.ok || isDeepStrictEqual(go.value, ours.value));
      // Errors need only agree on failing, but our wording is Go's, so hold it to that too.
      const sameText = go.ok || !ours.ok || c.anyText || goWording(c.op, go.err ?? '') === ours.err;
      if (!same || !sameText) {
        mismatches.push(`${c.op}(${JSON.stringify(c.args)}): go ${JSON.stringify(go)} ours ${JSON.stringify(ours)}`);
      }
    });
    if (process.env.MODCHECK_STATS) {
      const stats = new Map<string, [number, number]>();
      cases.forEach((c, i) => {
        const go = JSON.parse(lines[i] as string) as Answer;
        const s = stats.get(c.op) ?? [0, 0];
        s[go.ok && go.value !== false ? 0 : 1]++;
        stats.set(c.op, s);
      });
      console.log(cases.length, [...stats].map(([k, [a, b]]) => `${k} ok/true=${a} err/false=${b}`).join('\n'));
    }
    expect(mismatches.slice(0, 40)).toEqual([]);
    expect(mismatches.length).toBe(0);
    // Keep the corpus honest: a refactor of the generator must not silently shrink it.
    expect(cases.length).toBeGreaterThan(60_000);
  });

  it('accepts exactly the file-name characters Go accepts, over all of Unicode', async () => {
    const go = JSON.parse(await runGoTool('modcheck', [], JSON.stringify({ op: 'filePathRunes', args: [] }) + '\n')) as Answer;
    const ours: [number, number][] = [];
    for (let cp = 0; cp <= 0x10ffff; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      if (filePathError(String.fromCodePoint(cp)) !== undefined) continue;
      const last = ours[ours.length - 1];
      if (last && last[1] === cp - 1) last[1] = cp;
      else ours.push([cp, cp]);
    }
    expect(go.ok).toBe(true);
    expect(ours).toEqual(go.value);
  });
});
