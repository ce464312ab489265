// The report that opened the hardening issue: 30 clients on one cold ~2 MB zip, fetched from an
// upstream that closes the connection after every body (Python's http.server speaks HTTP/1.0),
// crashed the fetching worker (undici's paused-parser assertion), cut every client's body and
// left a .partial behind. Here the same upstream, two workers, many rounds: every client gets
// the whole zip, no worker dies, nothing transient is left, and the go command agrees.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createGoEnv } from '../helpers/goenv.js';
import { startProxy, type ProxyProcess } from '../helpers/gomodproxy.js';
import { cleanupAll, registerCleanup } from '../helpers/tmp.js';
import { buildModuleWorld, type World } from '../helpers/world.js';
import { freePort, incompressible, listFiles, streamGet, waitFor, waitForAccess } from './util.js';

const M = 'github.com/gmp-test/closing';
const VERSIONS = Array.from({ length: 6 }, (_v, i) => `v1.${i}.0`);
const CLIENTS = 30;

let world: World;
let proxy: ProxyProcess;
let pythonLog = '';

/** Python's own file server: HTTP/1.0, one connection per response, closed after the body. */
async function startPythonUpstream(root: string): Promise<string> {
  const port = await freePort();
  const py = spawn('python3', ['-u', '-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', root], { stdio: ['ignore', 'ignore', 'pipe'] });
  py.stderr.setEncoding('utf8');
  py.stderr.on('data', (t: string) => {
    pythonLog += t;
  });
  registerCleanup(async () => {
    py.kill('SIGKILL');
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => {
    const r = await fetch(`${url}/`).catch(() => null);
    return r?.ok;
  }, 'python3 -m http.server to listen');
  return url;
}

beforeAll(async () => {
  world = await buildModuleWorld({
    modules: [
      {
        path: M,
        versions: VERSIONS.map((version, i) => ({ version, files: { 'closing.go': 'package closing\n', 'data.bin': incompressible(2 << 20, 40 + i) } })),
      },
    ],
  });
  const upstream = await startPythonUpstream(world.downloadDir);
  proxy = await startProxy({ upstream: upstream, workers: 2 });
});
afterAll(cleanupAll);

test(`${CLIENTS} clients per cold zip from an HTTP/1.0 upstream, ${VERSIONS.length} rounds: whole zips, no worker lost`, async () => {
  // Both workers answer (one leads each fetch, the other follows it through the data folder).
  const pids = new Set<unknown>();
  for (const v of VERSIONS) {
    const want = await readFile(world.get(`${M}@${v}`).files.zip);
    const results = await Promise.all(
      Array.from({ length: CLIENTS }, () =>
        streamGet(`${proxy.url}/${M}/@v/${v}.zip`, async (_chunk, received) => {
          // Readers of different speeds, so the fetch is read while it streams in.
          if (received % 7 === 0) await new Promise((r) => setTimeout(r, 1));
        }),
      ),
    );
    for (const r of results) {
      expect(r.error).toBeUndefined();
      expect(r.status).toBe(200);
      expect(r.body.equals(want)).toBe(true);
    }
    // One upstream request per zip, whichever worker led the fetch (Python's log line may reach us after the body).
    const zipLines = (): string[] => pythonLog.split('\n').filter((l) => l.includes(`/@v/${v}.zip`));
    await waitFor(() => zipLines().length > 0, `python's log line for ${v}.zip`);
    expect(zipLines()).toHaveLength(1);
  }
  // Access lines are written in batches: wait for every zip request's line.
  const lines = await waitForAccess(proxy, '.zip', CLIENTS * VERSIONS.length);
  for (const l of lines) pids.add(l.pid);
  expect(proxy.logs().filter((l) => /worker exited|uncaught/.test(String(l.msg)))).toEqual([]);
  expect(proxy.stderr()).not.toMatch(/AssertionError|assert\(/);
  expect(pids.size).toBe(2);
  // Nothing transient stays behind: every zip is committed with its hash, and nothing else.
  const files = await listFiles(`${proxy.dataDir}/${M}/@v`);
  expect(files.filter((f) => f.endsWith('.zip') || f.endsWith('.ziphash')).sort()).toEqual(VERSIONS.flatMap((v) => [`${v}.zip`, `${v}.ziphash`]).sort());
  expect(files.filter((f) => /\.(partial|lock)$|\.tmp-/.test(f))).toEqual([]);

  // And the go command, through the proxy, computes what it computes going to the source.
  const env = await createGoEnv({ goproxy: proxy.url });
  const got = await env.modDownloadJson(VERSIONS.map((v) => `${M}@${v}`));
  expect(got.map((g) => g.Sum)).toEqual(VERSIONS.map((v) => world.get(`${M}@${v}`).Sum));
});
