// Hostile upstreams: whatever an upstream sends, a bad artifact is refused, nothing of it is
// cached (no file for that version in the data folder, and the next request asks again), and the
// client gets one clear text/plain line naming the cause (the go command prints it). Cases: a
// zip bomb (entries declared small that inflate huge), entries outside module@version/,
// duplicate names, case-colliding names, a symlink entry, a go.mod over 16 MiB inside the zip, a
// .mod over 16 MiB, endless bodies (.info, .mod, .zip), bodies that stall half way, and a 200
// carrying an HTML page instead of a zip.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { expectOneLineError, listFiles, rawRequest, waitFor } from '../e2e/util.js';
import { createGoEnv } from '../helpers/goenv.js';
import type { ProxyProcess } from '../helpers/gomodproxy.js';
import { get } from '../helpers/http.js';
import { cleanupAll, registerCleanup } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';
import { rawZip, type RawEntry } from '../modzip/helpers.js';
import { startProxyWithConfig } from './util.js';

const M = 'github.com/gmp-hostile/m';
const VERSIONS = Array.from({ length: 15 }, (_, i) => `v1.${i}.0`);
const MIB = 2 ** 20;

let world: World;
let upstream: TestUpstream;
let proxy: ProxyProcess;
let origin: string;
let upstreamList: string;
/** Paths the misbehaving server (first in the upstream list) has been asked for. */
const misbehaving: Map<string, (req: http.IncomingMessage, res: http.ServerResponse) => void> = new Map();
const misbehavingHits: string[] = [];

beforeAll(async () => {
  world = await buildModuleWorld({ modules: [{ path: M, versions: VERSIONS.map((version) => ({ version })) }] });
  upstream = await startTestUpstream({ root: world.downloadDir });
  // Endless and stalled bodies need a server that can keep a response open: it answers the paths
  // a test gives it and 404 for everything else, so the proxy goes on to the ordinary upstream.
  const server = http.createServer((req, res) => {
    const p = decodeURIComponent((req.url ?? '/').split('?')[0]!);
    misbehavingHits.push(p);
    const h = misbehaving.get(p);
    if (h) return h(req, res);
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end(`not found: ${p}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  registerCleanup(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const bad = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  upstreamList = `${bad},${upstream.url}`;
  // Health checks off in effect: this file is about refusing answers, not about resting upstreams.
  proxy = await startProxyWithConfig({ timeouts: { idle: '1s', firstByte: '3s' }, health: { failures: 1000 } }, { upstream: upstreamList });
  origin = proxy.url;
});
afterAll(cleanupAll);

const P = (v: string) => `${M}@${v}/`;
const goMod = Buffer.from(`module ${M}\n\ngo 1.21\n`);

/** Files in the data folder for `v`'s `ext` (with its .ziphash, staging and lock files). */
async function filesFor(v: string, ext: string): Promise<string[]> {
  return (await listFiles(proxy.dataDir)).filter((f) => f.includes(`/@v/${v}.${ext}`) || (ext === 'zip' && f.includes(`/@v/${v}.ziphash`)));
}

/**
 * Requests `ext` of `v` through the proxy: the first client gets a one-line error with `status`
 * naming the cause (or, for a zip larger than the proxy's 64 KiB hold-back, possibly a transfer
 * cut short: never a complete 200); a second request gets the line; nothing of the version is in
 * the data folder. Returns the line.
 */
async function refused(v: string, ext: 'info' | 'mod' | 'zip', status: number, cause: RegExp, opts: { mayCut?: boolean } = {}): Promise<string> {
  const first = await rawRequest(new URL(origin).origin, `/${M}/@v/${v}.${ext}`).catch((err: Error) => err);
  if (!(first instanceof Error) || !opts.mayCut) {
    expect(first instanceof Error ? `the connection failed: ${first.message}` : first.status, `${v}.${ext}`).toBe(status);
    expect(expectOneLineError(first as Exclude<typeof first, Error>, status)).toMatch(cause);
  }
  const again = await get(`${origin}/${M}/@v/${v}.${ext}`);
  const line = expectOneLineError(again, status);
  expect(line).toMatch(cause);
  expect(line).toContain(`${M}`);
  // (a refused fetch's lock and staging file go as the fetch winds down, just after the answer)
  await waitFor(async () => (await filesFor(v, ext)).length === 0, `no file of ${v}.${ext} in the data folder`);
  refusedVersions.push(`${v}.${ext}`);
  return line;
}

/** Every version.ext refused in this file, asked again after a restart at the end. */
const refusedVersions: string[] = [];

/**
 * A zip whose central directory lists `n` names for one and the same local entry (David
 * Fifield's overlapping-file bomb): `n * size` bytes declared, one deflated copy stored.
 */
function overlappingBomb(v: string, n: number, size: number): Buffer {
  const data = Buffer.alloc(size);
  const one = rawZip([
    { name: `${P(v)}go.mod`, data: goMod },
    { name: `${P(v)}f0.bin`, data },
  ]);
  // Cut the central directory off and write a new one: go.mod, then n names at f0's offset.
  const cdSize = one.readUInt32LE(one.length - 22 + 12);
  const cdOffset = one.readUInt32LE(one.length - 22 + 16);
  const cd = one.subarray(cdOffset, cdOffset + cdSize);
  const goModLen = 46 + cd.readUInt16LE(28);
  const first = cd.subarray(0, goModLen);
  const f0 = cd.subarray(goModLen);
  const entries = [first];
  for (let i = 0; i < n; i++) {
    const name = Buffer.from(`${P(v)}f${i}.bin`);
    const h = Buffer.from(f0.subarray(0, 46));
    h.writeUInt16LE(name.length, 28);
    entries.push(h, name);
  }
  const newCd = Buffer.concat(entries);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(n + 1, 8);
  end.writeUInt16LE(n + 1, 10);
  end.writeUInt32LE(newCd.length, 12);
  end.writeUInt32LE(cdOffset, 16);
  return Buffer.concat([one.subarray(0, cdOffset), newCd, end]);
}

function serveZip(v: string, entries: RawEntry[]): void {
  upstream.on(`/${M}/@v/${v}.zip`, { replaceBody: rawZip(entries), contentType: 'application/zip' });
}

describe('hostile zips', () => {
  test('a zip bomb: an entry declared 100 bytes that inflates to 50 MiB', async () => {
    const v = 'v1.0.0';
    const payload = zlib.deflateRawSync(Buffer.alloc(50 * MIB), { level: 9 });
    serveZip(v, [
      { name: `${P(v)}go.mod`, data: goMod },
      { name: `${P(v)}bomb.txt`, data: Buffer.alloc(100), payload, usize: 100, crc: 0 },
    ]);
    await refused(v, 'zip', 502, /sent an invalid zip .*bomb\.txt/);
  });

  test('a zip bomb of overlapping entries: ten names sharing one 60 MiB entry, 600 MiB declared in a 60 KiB zip', async () => {
    const v = 'v1.1.0';
    serveZip(v, [{ name: `${P(v)}go.mod`, data: goMod }]);
    upstream.on(`/${M}/@v/${v}.zip`, { replaceBody: overlappingBomb(v, 10, 60 * MIB), contentType: 'application/zip' });
    await refused(v, 'zip', 502, /sent an invalid zip/);
  });

  test('a bomb larger than the hold-back (256 MiB in 250 KiB): the first client never gets a whole 200; the go command fails; then the line', async () => {
    const v = 'v1.13.0';
    const payload = zlib.deflateRawSync(Buffer.alloc(256 * MIB), { level: 9 });
    expect(payload.length).toBeGreaterThan(64 * 1024);
    serveZip(v, [
      { name: `${P(v)}go.mod`, data: goMod },
      { name: `${P(v)}bomb.txt`, data: Buffer.alloc(100), payload, usize: 100, crc: 0 },
    ]);
    const env = await createGoEnv({ goproxy: origin });
    const [r] = await env.modDownloadJson([`${M}@${v}`], undefined, { allowErrors: true });
    expect(r?.Error).toBeTruthy();
    expect(r?.Zip).toBeUndefined();
    await refused(v, 'zip', 502, /sent an invalid zip .*bomb\.txt/, { mayCut: true });
  });

  test('an entry outside module@version/', async () => {
    const v = 'v1.2.0';
    serveZip(v, [
      { name: `${P(v)}go.mod`, data: goMod },
      { name: `${M}@v9.9.9/evil.go`, data: Buffer.from('package m\n') },
    ]);
    await refused(v, 'zip', 502, /invalid zip .*evil\.go/);
    const v2 = 'v1.3.0';
    serveZip(v2, [
      { name: `${P(v2)}go.mod`, data: goMod },
      { name: `${P(v2)}../../../../etc/evil.go`, data: Buffer.from('package m\n') },
    ]);
    await refused(v2, 'zip', 502, /invalid zip/);
  });

  test('duplicate names', async () => {
    const v = 'v1.4.0';
    serveZip(v, [
      { name: `${P(v)}go.mod`, data: goMod },
      { name: `${P(v)}a.go`, data: Buffer.from('package m\n') },
      { name: `${P(v)}a.go`, data: Buffer.from('package m // the other one\n') },
    ]);
    await refused(v, 'zip', 502, /invalid zip .*a\.go/);
  });

  test('case-colliding names', async () => {
    const v = 'v1.5.0';
    serveZip(v, [
      { name: `${P(v)}go.mod`, data: goMod },
      { name: `${P(v)}readme.md`, data: Buffer.from('a\n') },
      { name: `${P(v)}README.md`, data: Buffer.from('b\n') },
    ]);
    await refused(v, 'zip', 502, /invalid zip .*(readme|README)\.md/);
  });

  test('a symlink entry', async () => {
    const v = 'v1.6.0';
    serveZip(v, [
      { name: `${P(v)}go.mod`, data: goMod },
      { name: `${P(v)}link.go`, data: Buffer.from('/etc/passwd'), externalAttrs: (0o120777 << 16) >>> 0 },
    ]);
    await refused(v, 'zip', 502, /invalid zip .*link\.go/);
  });

  test('a go.mod over 16 MiB inside the zip', async () => {
    const v = 'v1.7.0';
    const huge = Buffer.concat([goMod, Buffer.alloc(17 * MIB, '/')]);
    serveZip(v, [{ name: `${P(v)}go.mod`, data: huge }]);
    await refused(v, 'zip', 502, /invalid zip .*go\.mod/);
  });

  test('a 200 with an HTML page instead of a zip; the go command prints the line', async () => {
    const v = 'v1.8.0';
    upstream.on(`/${M}/@v/${v}.zip`, { replaceBody: '<!DOCTYPE html>\n<html><body>Please sign in</body></html>\n', contentType: 'text/html' });
    await refused(v, 'zip', 502, /invalid zip|HTML/i);
    const env = await createGoEnv({ goproxy: origin });
    const [r] = await env.modDownloadJson([`${M}@${v}`], undefined, { allowErrors: true });
    expect(r?.Error).toMatch(/502 Bad Gateway\n\tserver response: .*(invalid zip|HTML)/i);
  });
});

describe('hostile .mod and bodies', () => {
  test('a .mod over 16 MiB (declared, and sent without a length)', async () => {
    const v = 'v1.9.0';
    const body = Buffer.concat([goMod, Buffer.alloc(17 * MIB, '\n')]);
    misbehaving.set(`/${M}/@v/${v}.mod`, (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': body.length });
      res.end(body);
    });
    await refused(v, 'mod', 502, /over the \d+-byte limit|more than \d+ bytes/);
    const v2 = 'v1.10.0';
    misbehaving.set(`/${M}/@v/${v2}.mod`, (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' }); // chunked: no length to refuse up front
      res.end(body);
    });
    await refused(v2, 'mod', 502, /more than \d+ bytes/);
  });

  test('endless bodies: .info, .mod and .zip that never end are cut at their limits', async () => {
    const endless = (type: string) => (req: http.IncomingMessage, res: http.ServerResponse) => {
      res.writeHead(200, { 'Content-Type': type });
      const chunk = Buffer.alloc(MIB, 'x');
      const pump = (): void => {
        while (!res.destroyed && res.write(chunk)) {
          /* fill the socket */
        }
        if (!res.destroyed) res.once('drain', pump);
      };
      req.socket.on('close', () => res.destroy());
      pump();
    };
    const v = 'v1.11.0';
    for (const [ext, type] of [
      ['info', 'application/json'],
      ['mod', 'text/plain; charset=utf-8'],
      ['zip', 'application/zip'],
    ] as const) {
      misbehaving.set(`/${M}/@v/${v}.${ext}`, endless(type));
    }
    await refused(v, 'info', 502, /more than \d+ bytes/);
    await refused(v, 'mod', 502, /more than \d+ bytes/);
    await refused(v, 'zip', 502, /more than 500 MiB/, { mayCut: true });
  });

  test('stalled bodies: half a .mod or .zip, then silence, is a timeout and nothing is kept', async () => {
    const v = 'v1.12.0';
    const half = (type: string, total: number) => (_req: http.IncomingMessage, res: http.ServerResponse) => {
      res.writeHead(200, { 'Content-Type': type, 'Content-Length': total });
      res.write(Buffer.alloc(Math.floor(total / 2), 'a'));
      // ...and nothing more: the connection stays open until the proxy gives up.
    };
    misbehaving.set(`/${M}/@v/${v}.mod`, half('text/plain; charset=utf-8', 4096));
    misbehaving.set(`/${M}/@v/${v}.zip`, half('application/zip', 100_000));
    await refused(v, 'mod', 504, /stalled/);
    await refused(v, 'zip', 504, /stalled/);
  });
});

describe('after all that', () => {
  test('the proxy is healthy; good versions are served byte-exact; after a restart every refused version is fetched (and refused) again', async () => {
    expect(proxy.proc.exitCode).toBeNull();
    expect((await get(`${origin}/healthz`)).status).toBe(200);
    const env = await createGoEnv({ goproxy: origin });
    const [r] = await env.modDownloadJson([`${M}@v1.14.0`]);
    expect([r?.Sum, r?.GoModSum]).toEqual([world.get(`${M}@v1.14.0`).Sum, world.get(`${M}@v1.14.0`).GoModSum]);
    expect(proxy.logs().filter((l) => l.msg === 'internal error' || l.msg === 'uncaught exception')).toEqual([]);

    // A new process on the same data folder has no memory of the refusals: nothing of them was stored.
    expect(refusedVersions.length).toBeGreaterThanOrEqual(12);
    await proxy.stop();
    proxy = await startProxyWithConfig(
      { timeouts: { idle: '1s', firstByte: '3s' }, health: { failures: 1000 } },
      { upstream: upstreamList, dataDir: proxy.dataDir },
    );
    origin = proxy.url;
    const sample = refusedVersions.filter((x) => /^v1\.(0|2|5|8|9)\.0\./.test(x));
    expect(sample.length).toBeGreaterThanOrEqual(5);
    for (const x of sample) {
      const before = upstream.count(`/${M}/@v/${x}`) + misbehavingHits.filter((h) => h === `/${M}/@v/${x}`).length;
      expectOneLineError(await get(`${origin}/${M}/@v/${x}`), 502);
      const after = upstream.count(`/${M}/@v/${x}`) + misbehavingHits.filter((h) => h === `/${M}/@v/${x}`).length;
      expect(after, `${x} asked again after the restart`).toBeGreaterThan(before);
    }
    // and the cached good version is still a hit
    expect((await get(`${origin}/${M}/@v/v1.14.0.zip`)).headers['x-gomodproxy-cache']).toBe('hit');
  });
});
