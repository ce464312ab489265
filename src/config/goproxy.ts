// GOPROXY-syntax upstream lists, parsed by the go command's own rules (cmd/go/internal/modfetch/proxy.go):
// entries cut at every ',' or '|', the separator after an entry deciding whether a failure of any
// kind ('|') or only "not found" (',') moves on to the next entry; 'direct' and 'off' end the list.

/** When the next entry of the list is tried after this one fails. */
export type Fallthrough = 'not-found' | 'any';

export type GoProxyEntry =
  { kind: 'proxy'; url: string; fallthrough: Fallthrough } | { kind: 'direct'; fallthrough: Fallthrough } | { kind: 'off'; fallthrough: Fallthrough };

export class GoProxyListError extends Error {}

/** Parses a GOPROXY value. Throws GoProxyListError with a one-line reason. */
export function parseGoProxyList(value: string): GoProxyEntry[] {
  const entries: GoProxyEntry[] = [];
  let rest = value;
  while (rest !== '') {
    const cut = rest.search(/[,|]/);
    let raw: string;
    let fallthrough: Fallthrough = 'not-found';
    if (cut >= 0) {
      raw = rest.slice(0, cut);
      fallthrough = rest[cut] === '|' ? 'any' : 'not-found';
      rest = rest.slice(cut + 1);
    } else {
      raw = rest;
      rest = '';
    }
    const entry = raw.trim();
    if (entry === '') continue;
    if (entry === 'off') {
      entries.push({ kind: 'off', fallthrough });
      break;
    }
    if (entry === 'direct') {
      entries.push({ kind: 'direct', fallthrough });
      break;
    }
    entries.push({ kind: 'proxy', url: normalizeProxyURL(entry), fallthrough });
  }
  return entries;
}

function normalizeProxyURL(entry: string): string {
  let text = entry;
  // As cmd/go: something that looks like a host or path without a scheme gets https://.
  if (/[.:/]/.test(text) && !text.includes(':/') && !text.startsWith('/')) text = `https://${text}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new GoProxyListError(`invalid proxy URL "${entry}": expected https://host[/path], http://host[/path], file:///abs/path, direct or off`);
  }
  if (url.protocol === 'file:') {
    if (url.host !== '' || !text.startsWith('file:///')) {
      throw new GoProxyListError(`invalid file URL "${entry}": use file:///absolute/path`);
    }
  } else if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new GoProxyListError(`invalid proxy URL "${entry}": scheme ${url.protocol.slice(0, -1)} is not supported; use https://, http:// or file:///`);
  }
  if (url.search || url.hash) {
    throw new GoProxyListError(`invalid proxy URL "${entry}": a proxy URL cannot carry a query or fragment`);
  }
  // Keep the base without a trailing slash: requests append "/<module>/@v/...".
  return url.toString().replace(/\/+$/, '');
}

/** Formats entries back to GOPROXY syntax, e.g. for logs. */
export function formatGoProxyList(entries: ReadonlyArray<{ kind: GoProxyEntry['kind']; url?: string; fallthrough: Fallthrough }>): string {
  let out = '';
  entries.forEach((e, i) => {
    out += e.kind === 'proxy' && e.url ? redactURL(e.url) : e.kind;
    if (i < entries.length - 1) out += e.fallthrough === 'any' ? '|' : ',';
  });
  return out;
}

/** A URL with any user:password removed, safe for logs and error messages. */
export function redactURL(raw: string): string {
  try {
    const u = new URL(raw);
    if (!u.username && !u.password) return raw;
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/+$/, '');
  } catch {
    return raw.replace(/\/\/[^/@]*@/, '//');
  }
}
