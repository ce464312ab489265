// Hostile input, generated: thousands of request paths (random bytes, "..", "%2e%2e", "%00" and
// raw NUL, "%2f", over-long, "!" misuse, unicode and overlong UTF-8, double encoding) sent over raw
// sockets (no client normalisation) to a running proxy whose data folder sits deep inside a temp
// dir with a sentinel file beside it; then the request parser and the module-zip checker called
// directly with generated inputs. Properties: no 5xx for a client's fault, every error one
// text/plain line, the process stays up, nothing is created outside the data folder, the
// sentinel is untouched, nothing malformed reaches the upstream; parseRequest only ever throws a
// 400/404 ProxyError and whatever it accepts is well formed; checkModuleZip only ever throws
// ZipError, and never hangs.
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ProxyError } from '../../src/errors.js';
import { checkModuleZip, ZipError } from '../../src/modzip/index.js';
import { canonicalVersion, check, checkPath, escapePath, escapeVersion } from '../../src/module/index.js';
import { parseRequest } from '../../src/server/protocol.js';
import { listFiles } from '../e2e/util.js';
import { startProxy, type ProxyProcess } from '../helpers/gomodproxy.js';
import { get } from '../helpers/http.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { rawZip, rng, type RawEntry } from '../modzip/helpers.js';

const SEED = Number(process.env.GMP_FUZZ_SEED ?? 0x6d70);
const HTTP_SAMPLES = Number(process.env.GMP_FUZZ_HTTP ?? 3000);
const PARSER_SAMPLES = Number(process.env.GMP_FUZZ_PARSER ?? 30_000);
const ZIP_SAMPLES = Number(process.env.GMP_FUZZ_ZIP ?? 600);
// Hang guards, not speed limits: they name the request or zip that never finishes (instead of a
// bare test timeout), and each normally takes milliseconds, so load on the machine cannot trip them.
const HANG_MS = 60_000;

// ---- generators ----

const MODULES = ['github.com/gmp-fuzz/a', 'github.com/!gmp/!fuzz', 'golang.org/x/text', 'gopkg.in/yaml.v3', 'example.com/m/v2', 'a.b/c'];
const VERSIONS = ['v1.0.0', 'v0.0.0-20200101000000-abcdefabcdef', 'v2.0.0+incompatible', 'v1.0.0-!r!c1', 'master', 'v1', 'latest'];
const SUFFIXES = ['/@v/list', '/@latest', '/@v/V.info', '/@v/V.mod', '/@v/V.zip', '', '/', '/@v/', '/@v/.info', '/@v/V.ziphash', '/@v/V.lock', '/@v/V'];
const HOSTILE = [
  '..',
  '.',
  '%2e%2e',
  '%2E%2E',
  '.%2e',
  '%2e.',
  '%252e%252e',
  '..%2f',
  '%2f',
  '%2F',
  '%5c',
  '\\',
  '..\\..',
  '%00',
  '\u0000',
  '%0a',
  '%0d%0a',
  '\r\n',
  '!',
  '!!',
  '!A',
  '!%41',
  '%21',
  '%21%21',
  'A',
  'É',
  '%C3%A9',
  '%C0%AE%C0%AE',
  '%FF',
  '%E2%80%AE',
  '\u202e',
  '😀',
  '%F0%9F%98%80',
  '%',
  '%G0',
  '%2',
  '~',
  '+',
  ' ',
  '%20',
  '?',
  '#',
  '@v',
  '@latest',
  '@',
  ';',
  '=',
  'CON',
  'aux.go',
  'nul',
  'sumdb',
  '-',
  '.git',
  'vendor',
  '//',
  '%2f%2f',
  '*',
  '[',
  '{',
];
const PREFIXES = ['', '/sumdb/sum.golang.org/lookup/', '/sumdb/sum.golang.org/tile/8/0/', '/sumdb/', '/-/', '/healthz', '/metrics/', '/..'];

function pick<T>(rand: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rand() * xs.length)] as T;
}

function randomBytes(rand: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

/** Percent-encodes what cannot go on an HTTP request line as is; keeps the rest raw. */
function wireSafe(s: string): string {
  return Buffer.from(s, 'utf8')
    .toString('latin1')
    .replace(/[^\x21-\x7e]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/**
 * One hostile request target. Mostly strings with a valid request line (so the proxy's own
 * parser is exercised), sometimes raw bytes that the HTTP layer itself must refuse.
 */
function hostileTarget(rand: () => number): { target: Buffer; raw: boolean } {
  const r = rand();
  if (r < 0.06) {
    // Raw random bytes (NUL, controls, high bytes) straight onto the request line.
    const bytes = randomBytes(rand, 1 + Math.floor(rand() * 60));
    return { target: Buffer.concat([Buffer.from('/'), bytes]), raw: true };
  }
  if (r < 0.1) {
    // Over-long paths: just past the parser's bound, and far past it.
    const n = pick(rand, [4097, 5000, 9000, 15_000]);
    const unit = pick(rand, ['a', '../', '%2e%2e/', '!a', 'é']);
    return { target: Buffer.from(wireSafe(`/${unit.repeat(Math.ceil(n / unit.length))}`.slice(0, n))), raw: false };
  }
  const mod = pick(rand, MODULES).split('/');
  const segs: string[] = [];
  for (const m of mod) {
    if (rand() < 0.25) segs.push(pick(rand, HOSTILE));
    if (rand() < 0.15) segs.push(pick(rand, ['..', '%2e%2e', '..%2f..', '%2e%2e%2f%2e%2e']));
    segs.push(rand() < 0.2 ? mutateString(rand, m) : m);
  }
  let p = pick(rand, PREFIXES) + (rand() < 0.9 ? '/' : '') + segs.join(rand() < 0.1 ? pick(rand, ['%2f', '//', '\\']) : '/');
  let suffix = pick(rand, SUFFIXES);
  let version = pick(rand, VERSIONS);
  if (rand() < 0.4) version = mutateString(rand, version);
  if (rand() < 0.2) version = `${pick(rand, ['..', '%2e%2e', '../..', '..%2f..%2f', '%00', '!'])}${rand() < 0.5 ? '/' : ''}${version}`;
  suffix = suffix.replace('V', version);
  p += suffix;
  if (rand() < 0.05) p += pick(rand, ['?go-get=1', '?x=%00', '#frag', '?', '?../../x']);
  if (rand() < 0.1) p = p.replace(/%/g, '%25'); // double encoding
  return { target: Buffer.from(wireSafe(p)), raw: false };
}

function mutateString(rand: () => number, s: string): string {
  const chars = [...s];
  const k = 1 + Math.floor(rand() * 3);
  for (let i = 0; i < k; i++) {
    const at = Math.floor(rand() * (chars.length + 1));
    const what = rand();
    if (what < 0.4) chars.splice(at, 0, pick(rand, HOSTILE));
    else if (what < 0.6) chars.splice(at, 1);
    else if (what < 0.8 && chars[at]) chars[at] = (chars[at] as string).toUpperCase();
    else chars.splice(at, 0, String.fromCharCode(Math.floor(rand() * 0x3000)));
  }
  return chars.join('');
}

/** Request targets Node's HTTP parser refuses before any handler runs. */
function nodeRefuses(target: Buffer): boolean {
  return target[0] !== 0x2f || target.length > 16_000 || target.some((b) => b < 0x21 || b > 0x7e);
}

// ---- a raw HTTP/1.1 client: the bytes go out exactly as given ----

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

function rawGet(port: number, target: Buffer): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer within ${HANG_MS / 1000} s for ${JSON.stringify(target.toString('latin1').slice(0, 200))}`));
    }, HANG_MS);
    sock.on('connect', () => {
      sock.write(Buffer.concat([Buffer.from('GET '), target, Buffer.from(' HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')]));
    });
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      clearTimeout(timer);
      const all = Buffer.concat(chunks);
      const end = all.indexOf('\r\n\r\n');
      if (end < 0) {
        reject(
          new Error(
            `connection closed without a response for ${JSON.stringify(target.toString('latin1').slice(0, 200))}: ${JSON.stringify(all.toString('latin1'))}`,
          ),
        );
        return;
      }
      const [statusLine, ...lines] = all.subarray(0, end).toString('latin1').split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      let body = all.subarray(end + 4);
      if (headers['content-length'] !== undefined) body = body.subarray(0, Number(headers['content-length']));
      resolve({ status: Number(statusLine?.split(' ')[1]), headers, body });
    });
  });
}

async function pool<T>(n: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

// ---- the running proxy ----

let root: string;
let dataDir: string;
let sentinel: string;
const SENTINEL_TEXT = 'gomodproxy fuzz sentinel: must never change\n';
let upstream: TestUpstream;
let proxy: ProxyProcess;

beforeAll(async () => {
  root = await makeTempDir('fuzz');
  // The data folder sits three levels down, so paths escaping it by a few ".." land inside root, where they are seen.
  dataDir = path.join(root, 'l1', 'l2', 'l3', 'data');
  await mkdir(dataDir, { recursive: true });
  sentinel = path.join(root, 'l1', 'l2', 'l3', 'sentinel.txt');
  await writeFile(sentinel, SENTINEL_TEXT);
  await writeFile(path.join(root, 'l1', 'sentinel-above.txt'), SENTINEL_TEXT);
  const upRoot = path.join(root, 'l1', 'upstream-root');
  await mkdir(upRoot, { recursive: true });
  upstream = await startTestUpstream({ root: upRoot });
  proxy = await startProxy({ upstream: upstream.url, dataDir, args: ['--no-access-log'] });
});
afterAll(cleanupAll);

async function snapshotOutsideData(): Promise<string[]> {
  const files = await listFiles(root);
  const rel = path.relative(root, dataDir).split(path.sep).join('/');
  return files.filter((f) => !f.startsWith(`${rel}/`));
}

describe('request fuzzing against a running proxy', () => {
  test(`${HTTP_SAMPLES} hostile paths (seed ${SEED}): no 5xx, one text/plain line per error, process up, nothing outside the data folder`, async () => {
    const before = await snapshotOutsideData();
    const port = Number(new URL(proxy.url).port);
    const rand = rng(SEED);
    const targets = Array.from({ length: HTTP_SAMPLES }, () => hostileTarget(rand));
    const results = await pool(targets.length, 24, async (i) => ({ t: targets[i]!, r: await rawGet(port, targets[i]!.target) }));

    const problems: string[] = [];
    let nodeRefused = 0;
    const statuses = new Map<number, number>();
    for (const { t, r } of results) {
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      const shown = JSON.stringify(t.target.toString('latin1').slice(0, 160));
      if (r.status >= 500) problems.push(`${r.status} for ${shown}: ${r.body.toString().slice(0, 200)}`);
      if (r.status < 400) continue;
      if (nodeRefuses(t.target)) {
        // Not a request line HTTP allows (raw control bytes, no leading "/", over Node's 16 KiB
        // header limit): Node's HTTP parser refuses it with a bare 400/431 before the app sees it.
        expect([400, 431, 414], shown).toContain(r.status);
        nodeRefused++;
        continue;
      }
      const text = r.body.toString('utf8');
      const type = r.headers['content-type'] ?? '';
      if (!/^text\/plain; charset=utf-8$/i.test(type)) problems.push(`${r.status} with Content-Type ${JSON.stringify(type)} for ${shown}`);
      else if (!text.endsWith('\n') || text.slice(0, -1).includes('\n') || text.trim() === '')
        problems.push(`${r.status} body not one line for ${shown}: ${JSON.stringify(text.slice(0, 200))}`);
      else if (Buffer.byteLength(text) > 648)
        problems.push(`${r.status} line longer than the go command prints (${Buffer.byteLength(text)} bytes) for ${shown}`);
      if (r.status === 401 || r.status === 403 || r.status === 405 || r.status === 429) problems.push(`unexpected ${r.status} for ${shown}`);
    }
    expect(problems.slice(0, 20)).toEqual([]);
    console.log(`request fuzz: statuses ${JSON.stringify(Object.fromEntries(statuses))}, ${nodeRefused} refused by Node's HTTP parser`);
    // Most requests were well-formed enough to reach the app's own parser (not just Node's).
    expect((statuses.get(400) ?? 0) + (statuses.get(404) ?? 0)).toBeGreaterThan(HTTP_SAMPLES * 0.8);

    // Still up and healthy.
    expect(proxy.proc.exitCode).toBeNull();
    expect((await get(`${proxy.url}/healthz`)).status).toBe(200);
    expect(proxy.logs().filter((l) => l.msg === 'internal error' || l.msg === 'uncaught exception')).toEqual([]);
    expect(proxy.stderr()).toBe('');

    // Nothing created or changed outside the data folder; the sentinels are intact.
    expect(await snapshotOutsideData()).toEqual(before);
    expect(await readFile(sentinel, 'utf8')).toBe(SENTINEL_TEXT);
    expect(await readFile(path.join(root, 'l1', 'sentinel-above.txt'), 'utf8')).toBe(SENTINEL_TEXT);
    // Inside the data folder only the proxy's own state (no module was found upstream).
    const inside = await listFiles(dataDir);
    expect(inside.filter((f) => !f.startsWith('state/') && !f.startsWith('.'))).toEqual([]);

    // What did reach the upstream was well formed: a checked module path, no dot segments, no NUL.
    for (const u of upstream.requests) {
      const segs = u.path.split('/');
      expect(segs.includes('..') || segs.includes('.') || u.path.includes('\0') || u.rawPath.includes('%00'), u.rawPath).toBe(false);
      const at = u.path.indexOf('/@');
      expect(() => checkPath(u.path.slice(1, at).replace(/!([a-z])/g, (_m, c: string) => c.toUpperCase())), u.rawPath).not.toThrow();
    }
  });
});

describe('what the fuzzer found: query versions reach the upstream escaped', () => {
  // The go command allows any file-name character in a version query and sends it escaped
  // (url.PathEscape): "x y" as x%20y, "a%2fb" as a%252fb. The proxy decodes it, and must escape it
  // again for its upstream: sent raw, a space makes the request fail as an upstream outage (a
  // client could rest the upstream for everyone), and "%2f", "#" or "&" would change which path the
  // upstream sees.
  test('the upstream receives exactly the query the client asked for, and answers it', async () => {
    const M = 'github.com/gmp-fuzz/q';
    const queries = ['x y', 'a%2fb', '..%2f..%2fadmin', 'a#b', 'a&b=c', 'a[1]', '{x}', 'a$b', 'a,b', '(x)', 'a^b'];
    upstream.reset();
    for (const q of queries) {
      const res = await get(`${proxy.url}/${M}/@v/${encodeURIComponent(q)}.info`);
      expect([res.status, res.text()], q).toEqual([404, expect.stringMatching(/^not found/)]);
      const got = upstream.requests.at(-1);
      expect(got, `${q} reached the upstream`).toBeTruthy();
      expect(got!.rawPath, q).toMatch(/^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]+$/);
      expect(decodeURIComponent(got!.rawPath), q).toBe(`/${M}/@v/${q}.info`);
    }
    // and the upstream is healthy for everyone else
    const list = await get(`${proxy.url}/${M}/@v/list`);
    expect([list.status, list.text()]).toEqual([404, expect.stringMatching(/^not found/)]);
  });
});

// ---- parseRequest ----

describe('parseRequest with generated input', () => {
  test(`${PARSER_SAMPLES} inputs: a 400/404 ProxyError or a well-formed request, never anything else`, () => {
    const rand = rng(SEED ^ 0x1234);
    let accepted = 0;
    const failures: string[] = [];
    for (let i = 0; i < PARSER_SAMPLES; i++) {
      let url: string;
      const r = rand();
      if (r < 0.3) url = hostileTarget(rand).target.toString('latin1');
      else if (r < 0.45) url = `/${randomBytes(rand, Math.floor(rand() * 80)).toString('latin1')}`;
      else if (r < 0.55) url = randomBytes(rand, Math.floor(rand() * 40)).toString('utf8');
      else
        url = wireSafe(`/${pick(rand, MODULES)}${pick(rand, SUFFIXES).replace('V', pick(rand, VERSIONS))}`).replace(/./g, (c) =>
          rand() < 0.01 ? pick(rand, HOSTILE) : c,
        );
      const prefix = rand() < 0.1 ? '/go' : '';
      if (prefix && rand() < 0.8) url = prefix + url;
      try {
        const p = parseRequest(url, prefix);
        if (p.kind === 'ops') continue;
        if (p.kind === 'sumdb') {
          expect(typeof p.path).toBe('string');
          continue;
        }
        accepted++;
        // Well formed: the module path passes CheckPath and its escaped form is the canonical one
        // (the cache key is built from it: no "..", no NUL, no second spelling of one module).
        checkPath(p.mod.path);
        expect(escapePath(p.mod.path)).toBe(p.mod.escaped);
        expect(p.mod.escaped.split('/')).not.toContain('..');
        if (p.kind === 'list' || p.kind === 'latest') continue;
        expect(escapeVersion(p.version.version)).toBe(p.version.escaped);
        expect(p.version.escaped).not.toMatch(/[/\\\0]|^\.\.?$/);
        if (p.kind === 'info' || p.kind === 'mod' || p.kind === 'zip') {
          expect(canonicalVersion(p.version.version)).toBe(p.version.version);
          check(p.mod.path, p.version.version);
        }
      } catch (err) {
        if (!(err instanceof ProxyError) || (err.status !== 400 && err.status !== 404)) {
          failures.push(`${JSON.stringify(url).slice(0, 200)}: ${err instanceof Error ? `${err.name} ${err.message}` : String(err)}`);
        } else if (/[\r\n]/.test(err.message) || err.message.length > 600) {
          failures.push(`${JSON.stringify(url).slice(0, 200)}: message not one bounded line`);
        }
      }
    }
    expect(failures.slice(0, 20)).toEqual([]);
    expect(accepted).toBeGreaterThan(PARSER_SAMPLES * 0.1);
  });
});

// ---- checkModuleZip ----

const MOD = 'example.com/fuzz';
const VER = 'v1.0.0';
const PREFIX = `${MOD}@${VER}/`;

let bombPayload: Buffer | undefined;

/** A structurally generated zip: random entries, names, sizes, methods and lies. */
function generatedZip(rand: () => number): Buffer {
  const n = Math.floor(rand() * 8);
  const entries: RawEntry[] = [];
  const names = ['go.mod', 'a.go', 'A.go', 'sub/b.go', 'LICENSE', 'vendor/x/y.go', 'GO.MOD', 'sub/go.mod', 'dir/', 'é.go', 'x'.repeat(300)];
  for (let i = 0; i < n; i++) {
    const prefixKind = rand();
    const base = rand() < 0.15 ? pick(rand, HOSTILE) : pick(rand, names);
    let name: string | Buffer =
      prefixKind < 0.7
        ? PREFIX + base
        : prefixKind < 0.8
          ? `../${base}`
          : prefixKind < 0.85
            ? `/${PREFIX}${base}`
            : prefixKind < 0.9
              ? `${MOD}@v9.9.9/${base}`
              : `${PREFIX}${base}\\..\\x`;
    if (rand() < 0.05) name = Buffer.concat([Buffer.from(PREFIX), randomBytes(rand, 1 + Math.floor(rand() * 10))]);
    const size = pick(rand, [0, 1, 10, 100, 5000, 70_000]);
    let data = Buffer.alloc(size, pick(rand, [0x20, 0x41, 0x00]));
    if (typeof name === 'string' && name.endsWith('go.mod') && rand() < 0.7) data = Buffer.from(`module ${MOD}\n`);
    const e: RawEntry = { name, data, method: pick(rand, [0, 8, 8, 8, 1, 12, 99]) };
    const lie = rand();
    if (lie < 0.1) e.usize = Math.floor(rand() * size);
    else if (lie < 0.15) e.usize = pick(rand, [0xffffffff, 0x7fffffff, 16 * 2 ** 20 + 1]);
    else if (lie < 0.2) e.csize = Math.floor(rand() * (size + 10));
    else if (lie < 0.25) e.crc = Math.floor(rand() * 2 ** 32);
    if (rand() < 0.08) e.externalAttrs = (0o120777 << 16) >>> 0; // symlink
    if (rand() < 0.05) e.flags = 0x801; // encrypted
    if (rand() < 0.1) e.descriptor = rand() < 0.5 ? 'sig' : 'nosig';
    entries.push(e);
    if (rand() < 0.1) entries.push({ ...e }); // duplicate
  }
  if (rand() < 0.08) {
    // A bomb: 64 MiB of zeros declared as 100 bytes.
    const payload = (bombPayload ??= zlib.deflateRawSync(Buffer.alloc(64 * 2 ** 20)));
    entries.push({ name: `${PREFIX}bomb.txt`, data: Buffer.alloc(100), payload, usize: 100, crc: 0 });
  }
  let zip = rawZip(entries, { comment: rand() < 0.1 ? randomBytes(rand, 20) : undefined, trailing: rand() < 0.05 ? randomBytes(rand, 30) : undefined });
  if (rand() < 0.15) zip = zip.subarray(0, Math.floor(rand() * zip.length));
  return zip;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    }),
  ]);
}

describe('checkModuleZip with generated zips', () => {
  test(`${ZIP_SAMPLES} generated zips (seed ${SEED}): a CheckedZip or a one-line ZipError, and every check finishes`, async () => {
    const dir = await makeTempDir('zipfuzz');
    const rand = rng(SEED ^ 0xbeef);
    let accepted = 0;
    let rejected = 0;
    const failures: string[] = [];
    const unhandled: unknown[] = [];
    const onUnhandled = (r: unknown): void => void unhandled.push(r);
    process.on('unhandledRejection', onUnhandled);
    try {
      for (let i = 0; i < ZIP_SAMPLES; i++) {
        const zip = generatedZip(rand);
        const f = path.join(dir, `z${i}.zip`);
        await writeFile(f, zip);
        // Module path and version are hostile now and then too.
        const mod = rand() < 0.05 ? pick(rand, ['example.com/../x', 'Example.com/x', 'example.com/fuzz\0', '']) : MOD;
        const ver = rand() < 0.05 ? pick(rand, ['v1.0', 'v1.0.0+meta', '../v1.0.0', 'latest']) : VER;
        const label = `zip ${i} (${createHash('sha256').update(zip).digest('hex').slice(0, 12)}, ${mod}@${ver})`;
        try {
          const c = await withTimeout(checkModuleZip(f, mod, ver), HANG_MS, label);
          accepted++;
          expect(c.h1, label).toMatch(/^h1:[A-Za-z0-9+/]{43}=$/);
        } catch (err) {
          if (!(err instanceof ZipError)) failures.push(`${label}: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
          else if (/[\r\n]/.test(err.message)) failures.push(`${label}: message is not one line`);
          else rejected++;
        }
      }
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    expect(failures.slice(0, 20)).toEqual([]);
    expect(unhandled).toEqual([]);
    expect(rejected).toBeGreaterThan(ZIP_SAMPLES * 0.3);
    expect(accepted).toBeGreaterThan(0);
  });
});
