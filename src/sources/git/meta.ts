// `<meta name="go-import" content="prefix vcs repo-url [subdir]">` discovery, read the way
// cmd/go/internal/vcs/discovery.go reads it: a lenient tokenizer over the HTML head (not an HTML
// parser), tag and attribute names compared case-insensitively, stopping at <body> or </head>.

export interface MetaImport {
  prefix: string;
  vcs: string;
  repoRoot: string;
  /** Optional fourth field (Go 1.25): the module's directory inside the repository. */
  subDir: string;
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[A-Za-z]+);/g, (whole, body: string) => {
    if (body.startsWith('#x') || body.startsWith('#X')) return safeCodePoint(parseInt(body.slice(2), 16)) ?? whole;
    if (body.startsWith('#')) return safeCodePoint(parseInt(body.slice(1), 10)) ?? whole;
    // Go's non-strict decoder leaves unknown entities as they are.
    return ENTITIES[body] ?? whole;
  });
}

function safeCodePoint(n: number): string | undefined {
  return Number.isFinite(n) && n >= 0 && n <= 0x10ffff ? String.fromCodePoint(n) : undefined;
}

interface Tag {
  name: string;
  end: boolean;
  attrs: [string, string][];
}

/** Yields start and end tags in order; comments, CDATA, declarations and processing instructions are skipped. */
function* tags(html: string): Generator<Tag> {
  let i = 0;
  const n = html.length;
  while (i < n) {
    const lt = html.indexOf('<', i);
    if (lt < 0) return;
    if (html.startsWith('<!--', lt)) {
      const e = html.indexOf('-->', lt + 4);
      if (e < 0) return;
      i = e + 3;
      continue;
    }
    if (html.startsWith('<![CDATA[', lt)) {
      const e = html.indexOf(']]>', lt + 9);
      if (e < 0) return;
      i = e + 3;
      continue;
    }
    if (html[lt + 1] === '!' || html[lt + 1] === '?') {
      const e = html.indexOf('>', lt + 2);
      if (e < 0) return;
      i = e + 1;
      continue;
    }
    let j = lt + 1;
    const end = html[j] === '/';
    if (end) j++;
    const nameStart = j;
    while (j < n && !/[\s/>]/.test(html[j] as string)) j++;
    const name = html.slice(nameStart, j);
    if (name === '') {
      i = lt + 1;
      continue;
    }
    const attrs: [string, string][] = [];
    // Attributes until '>' (quoted values may contain '>').
    for (;;) {
      while (j < n && /[\s/]/.test(html[j] as string)) j++;
      if (j >= n) return;
      if (html[j] === '>') {
        j++;
        break;
      }
      const aStart = j;
      while (j < n && !/[\s=>/]/.test(html[j] as string)) j++;
      const aName = html.slice(aStart, j);
      while (j < n && /\s/.test(html[j] as string)) j++;
      let value = aName; // non-strict: an attribute without a value has its own name as value
      if (html[j] === '=') {
        j++;
        while (j < n && /\s/.test(html[j] as string)) j++;
        const q = html[j];
        if (q === '"' || q === "'") {
          const e = html.indexOf(q, j + 1);
          if (e < 0) return;
          value = html.slice(j + 1, e);
          j = e + 1;
        } else {
          const vStart = j;
          while (j < n && !/[\s>]/.test(html[j] as string)) j++;
          value = html.slice(vStart, j);
        }
      }
      if (aName !== '') attrs.push([aName, decodeEntities(value)]);
      else j++;
    }
    i = j;
    yield { name: localName(name), end, attrs: attrs.map(([k, v]) => [localName(k), v]) };
  }
}

function localName(name: string): string {
  const c = name.indexOf(':');
  return c >= 0 ? name.slice(c + 1) : name;
}

function attr(t: Tag, name: string): string {
  for (const [k, v] of t.attrs) if (k.toLowerCase() === name) return v;
  return '';
}

/**
 * The go-import entries of a page, `mod` entries first (they hide non-`mod` entries with the same
 * prefix), as the go command lists them in module mode.
 */
export function parseMetaGoImports(html: string): MetaImport[] {
  const found: MetaImport[] = [];
  for (const t of tags(html)) {
    const lname = t.name.toLowerCase();
    if (!t.end && lname === 'body') break;
    if (t.end && lname === 'head') break;
    if (t.end || lname !== 'meta') continue;
    if (attr(t, 'name') !== 'go-import') continue;
    const f = attr(t, 'content')
      .split(/[\t\n\v\f\r ]+/)
      .filter((s) => s !== '');
    if (f.length === 3 || f.length === 4) {
      found.push({ prefix: f[0] as string, vcs: f[1] as string, repoRoot: f[2] as string, subDir: f[3] ?? '' });
    }
  }
  const modPrefixes = new Set(found.filter((m) => m.vcs === 'mod').map((m) => m.prefix));
  return [...found.filter((m) => m.vcs === 'mod'), ...found.filter((m) => m.vcs !== 'mod' && !modPrefixes.has(m.prefix))];
}

/** Whether path equals prefix or continues it at a slash (str.HasPathPrefix). */
export function hasPathPrefix(path: string, prefix: string): boolean {
  if (path.length === prefix.length) return path === prefix;
  if (path.length > prefix.length) {
    if (prefix !== '' && prefix.endsWith('/')) return path.startsWith(prefix);
    return path[prefix.length] === '/' && path.startsWith(prefix);
  }
  return false;
}

/**
 * The one entry that matches importPath. Several matches are an error unless the first is a `mod`
 * entry; none is reported with the prefixes that did not match.
 */
export function matchGoImport(imports: MetaImport[], importPath: string): MetaImport {
  let match = -1;
  const mismatches: string[] = [];
  for (let i = 0; i < imports.length; i++) {
    const im = imports[i] as MetaImport;
    if (!hasPathPrefix(importPath, im.prefix)) {
      mismatches.push(im.prefix);
      continue;
    }
    if (match >= 0) {
      if ((imports[match] as MetaImport).vcs === 'mod' && im.vcs !== 'mod') break;
      throw new MetaMatchError(`multiple meta tags match import path "${importPath}"`, false);
    }
    match = i;
  }
  if (match < 0) {
    throw new MetaMatchError(mismatches.map((p) => `meta tag ${p} did not match import path ${importPath}`).join(', '), true);
  }
  return imports[match] as MetaImport;
}

export class MetaMatchError extends Error {
  constructor(
    message: string,
    /** No entry matched (as opposed to several). */
    readonly mismatch: boolean,
  ) {
    super(message);
    this.name = 'MetaMatchError';
  }
}
