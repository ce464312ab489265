// startNginx in front of real gomodproxy instances (each over its own data folder, the plain
// single-host setup): requests are spread and answered byte for byte, a dead instance is skipped
// without a failed request, a reload swaps the instances, and stop() frees the port.
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startProxy, type ProxyProcess } from '../helpers/gomodproxy.js';
import { get } from '../helpers/http.js';
import { startNginx } from '../helpers/nginx.js';
import { cleanupAll, registerCleanup } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';

const M = 'github.com/gmp-test/nginxed';
const versions = ['v1.0.0', 'v1.1.0', 'v1.2.0'];

let world: World;
let up: TestUpstream;
let proxies: ProxyProcess[];

beforeAll(async () => {
  world = await buildModuleWorld({ modules: [{ path: M, versions: versions.map((version) => ({ version })) }] });
  up = await startTestUpstream({ root: world.downloadDir });
  proxies = await Promise.all([0, 1, 2].map(() => startProxy({ upstream: up.url })));
});
afterAll(cleanupAll);

const hostPort = (p: ProxyProcess): string => p.url.replace(/^http:\/\//, '');

async function allRight(base: string, times: number): Promise<string[]> {
  const bad: string[] = [];
  for (let t = 0; t < times; t++) {
    for (const ver of versions) {
      const r = await get(`${base}/${M}/@v/${ver}.zip`);
      const want = await readFile(world.get(`${M}@${ver}`).files.zip);
      if (r.status !== 200 || !r.body.equals(want)) bad.push(`${ver}.zip: ${r.status}, ${r.body.length} bytes`);
      const mod = await get(`${base}/${M}/@v/${ver}.mod`);
      if (mod.status !== 200 || mod.text() !== world.get(`${M}@${ver}`).modText) bad.push(`${ver}.mod: ${mod.status}`);
    }
  }
  return bad;
}

test('spreads requests over the instances, skips a dead one without a failed request, reloads a new list, stops', async () => {
  const [a, b, c] = proxies as [ProxyProcess, ProxyProcess, ProxyProcess];
  const nginx = await startNginx({ upstreams: [hostPort(a), hostPort(b)] });
  expect(await allRight(nginx.url, 4)).toEqual([]);
  const access = await nginx.accessLog(24);
  expect(access.length).toBe(24);
  expect(new Set(access.flatMap((l) => l.upstreams))).toEqual(new Set([hostPort(a), hostPort(b)]));

  await a.kill();
  expect(await allRight(nginx.url, 4)).toEqual([]);
  const afterKill = (await nginx.accessLog(48)).slice(24);
  expect(afterKill.every((l) => l.status === 200 && l.upstreams.at(-1) === hostPort(b))).toBe(true);
  // nginx tried the dead one at least once (then marked it failed for fail_timeout) and went on.
  expect(afterKill.some((l) => l.upstreams.length === 2 && l.upstreams[0] === hostPort(a))).toBe(true);
  expect(await nginx.errorLog()).toMatch(/connect\(\) failed|Connection refused/);

  await nginx.reload([hostPort(c)]);
  const mark = (await nginx.accessLog(48)).length;
  expect(await allRight(nginx.url, 2)).toEqual([]);
  expect(new Set((await nginx.accessLog(mark + 12)).slice(mark).flatMap((l) => l.upstreams))).toEqual(new Set([hostPort(c)]));

  await nginx.stop();
  const refused = await new Promise<boolean>((resolve) => {
    const s = net.connect(nginx.port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
  expect(refused).toBe(true);
});

test('a zip streams through nginx: the client has bytes while the upstream still holds back the end', async () => {
  const BIG = 'github.com/gmp-test/nginxbig';
  const big = await buildModuleWorld({
    modules: [{ path: BIG, versions: [{ version: 'v1.0.0', files: { 'big.go': 'package big\n', 'data.bin': incompressible(2 << 20) } }] }],
  });
  const zipPath = `/${BIG}/@v/v1.0.0.zip`;
  const want = await readFile(big.get(`${BIG}@v1.0.0`).files.zip);
  // An upstream that sends all but the last 100 KiB of the zip, then waits for the test.
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const server = http.createServer((req, res) => {
    if (req.url !== zipPath) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/zip', 'content-length': String(want.length) });
    res.write(want.subarray(0, want.length - 100 * 1024));
    void held.then(() => res.end(want.subarray(want.length - 100 * 1024)));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  registerCleanup(() => new Promise((r) => server.close(r)));
  server.on('connection', (s) => registerCleanup(() => s.destroy()));
  const streamer = await startProxy({ upstream: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}` });
  const nginx = await startNginx({ upstreams: [hostPort(streamer)] });

  const res = await request(`${nginx.url}${zipPath}`, { headersTimeout: 60_000, bodyTimeout: 60_000 });
  expect(res.statusCode).toBe(200);
  const chunks: Buffer[] = [];
  let releasedAt = -1;
  for await (const c of res.body) {
    chunks.push(c as Buffer);
    if (releasedAt < 0) {
      releasedAt = Buffer.concat(chunks).length;
      release();
    }
  }
  expect(releasedAt).toBeGreaterThan(0);
  expect(Buffer.concat(chunks).equals(want)).toBe(true);
  await nginx.stop();
});

/** Bytes no compressor shrinks, so the zip is as large as its data. */
function incompressible(size: number): Buffer {
  const out = Buffer.alloc(size);
  let x = 2463534242;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
