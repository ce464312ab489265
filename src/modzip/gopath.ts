// Small ports of the Go standard library pieces that module-zip rules are written in terms of
// (path.Clean, path.Split, strings.EqualFold, go/version.Lang). They operate on JS strings; the
// only characters they inspect are ASCII, so UTF-16 code units are as good as Go's bytes here.

/** path.Clean */
export function cleanPath(p: string): string {
  if (p === '') return '.';
  const rooted = p.charCodeAt(0) === 0x2f;
  const n = p.length;
  // Output is built as an array of segments' characters; `w` mirrors Go's lazybuf write index.
  const out: string[] = [];
  let r = 0;
  let dotdot = 0;
  if (rooted) {
    out.push('/');
    r = 1;
    dotdot = 1;
  }
  while (r < n) {
    const c = p[r];
    if (c === '/') {
      r++;
    } else if (c === '.' && (r + 1 === n || p[r + 1] === '/')) {
      r++;
    } else if (c === '.' && p[r + 1] === '.' && (r + 2 === n || p[r + 2] === '/')) {
      r += 2;
      if (out.length > dotdot) {
        // Back up over the last element and the slash before it.
        let c = out.pop();
        while (out.length > dotdot && c !== '/') c = out.pop();
      } else if (!rooted) {
        if (out.length > 0) out.push('/');
        out.push('.', '.');
        dotdot = out.length;
      }
    } else {
      if ((rooted && out.length !== 1) || (!rooted && out.length !== 0)) out.push('/');
      for (; r < n && p[r] !== '/'; r++) out.push(p[r] as string);
    }
  }
  return out.length === 0 ? '.' : out.join('');
}

/** path.Split: the directory part keeps its trailing slash. */
export function splitPath(p: string): [dir: string, base: string] {
  const i = p.lastIndexOf('/');
  return [p.slice(0, i + 1), p.slice(i + 1)];
}

/** strings.EqualFold(s, "go.mod"): no non-ASCII rune folds to g, o, m or d, so ASCII suffices. */
export function isGoModFold(base: string): boolean {
  // eslint-disable-next-line no-control-regex -- the whole ASCII range, controls included
  return base.length === 6 && base.toLowerCase() === 'go.mod' && /^[\x00-\x7f]*$/.test(base);
}

// Case folding. Go compares names with the orbits of unicode.SimpleFold (Unicode simple case
// folding). JS has no such function, but a /iu regexp canonicalises with exactly that folding, so
// it serves as the oracle that decides whether a code point and its upper/lower-case mapping
// belong to the same orbit. Orbits are then closed with union-find and each code point maps to
// the smallest member, as Go's strToFold does.
let foldMin: Map<number, number> | undefined;

function buildFoldTable(): Map<number, number> {
  const parent = new Map<number, number>();
  const find = (x: number): number => {
    let r = x;
    for (let p = parent.get(r); p !== undefined && p !== r; p = parent.get(r)) r = p;
    // Path compression keeps the second pass cheap.
    for (let y = x, p = parent.get(y); p !== undefined && p !== r; p = parent.get(y)) {
      parent.set(y, r);
      y = p;
    }
    return r;
  };
  const union = (a: number, b: number): void => {
    if (!parent.has(a)) parent.set(a, a);
    if (!parent.has(b)) parent.set(b, b);
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parent.set(Math.max(ra, rb), Math.min(ra, rb));
  };
  // Every cased code point lies below U+20000.
  for (let cp = 0; cp < 0x20000; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    const s = String.fromCodePoint(cp);
    for (const m of [s.toLowerCase(), s.toUpperCase()]) {
      if (m === s) continue;
      const mcp = m.codePointAt(0) as number;
      if (String.fromCodePoint(mcp) !== m) continue; // a multi-character mapping is not a simple fold
      if (!new RegExp(`^\\u{${cp.toString(16)}}$`, 'iu').test(m)) continue;
      union(cp, mcp);
    }
  }
  const table = new Map<number, number>();
  for (const cp of parent.keys()) table.set(cp, find(cp));
  return table;
}

/** The smallest member of cp's simple-folding orbit (cp itself when it has no case). */
export function foldOrbitMin(cp: number): number {
  foldMin ??= buildFoldTable();
  return foldMin.get(cp) ?? cp;
}

/** strToFold from x/mod/zip: strings.EqualFold(s, t) iff strToFold(s) === strToFold(t). */
export function strToFold(s: string): string {
  // eslint-disable-next-line no-control-regex -- ASCII without upper-case letters, controls included
  if (/^[\x00-\x40\x5b-\x7f]*$/.test(s)) return s;
  // Every ASCII letter's orbit has its upper-case form as smallest member (the Kelvin sign and
  // the long s sort above), which then maps to lower case: plain ASCII needs no table.
  // eslint-disable-next-line no-control-regex -- the whole ASCII range, controls included
  if (/^[\x00-\x7f]*$/.test(s)) return s.toLowerCase();
  let out = '';
  for (const ch of s) {
    let r = foldOrbitMin(ch.codePointAt(0) as number);
    if (r >= 0x41 && r <= 0x5a) r += 0x20;
    out += String.fromCodePoint(r);
  }
  return out;
}

/**
 * go/version.Lang("go" + v) for a go.mod `go` line value v: "1.21.3" and "1.21rc1" give "go1.21",
 * "1" and "1.0" give "go1", anything that is not a valid Go version gives "".
 */
export function goLang(v: string | undefined): string {
  if (v === undefined) return '';
  const x = v.split('-', 1)[0] as string; // stripGo drops a "-custom" suffix
  const m = /^(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*)|[a-z]+(?:0|[1-9][0-9]*)?)?)?$/.exec(x);
  if (!m) return '';
  const major = m[1] as string;
  const minor = m[2] ?? '0'; // gover.Parse reads a bare major as major.0.0
  return major === '1' && minor === '0' ? 'go1' : `go${major}.${minor}`;
}

/** go/version.Compare(lang, "go1.24") >= 0 for a value produced by goLang. */
export function langAtLeast(lang: string, major: number, minor: number): boolean {
  const m = /^go(\d+)(?:\.(\d+))?$/.exec(lang);
  if (!m) return false;
  const maj = Number(m[1]);
  const min = m[2] === undefined ? 0 : Number(m[2]);
  return maj !== major ? maj > major : min >= minor;
}
