// A bug must not cut other clients' downloads. A promise nobody awaited is logged and counted,
// and the process goes on serving; an uncaught exception makes the process stop taking requests,
// finish what is in flight, and exit, so the supervisor starts a fresh worker. The bugs are
// injected from outside every request's path by a module loaded with --import.
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startProxy, type ProxyProcess } from '../helpers/gomodproxy.js';
import { get } from '../helpers/http.js';
import { cleanupAll } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';
import { incompressible, streamGet, waitFor } from './util.js';

const M = 'github.com/gmp-test/bugs';
const hook = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'bug-on-signal.mjs');

let world: World;
let up: TestUpstream;

beforeAll(async () => {
  world = await buildModuleWorld({
    modules: [
      {
        path: M,
        versions: ['v1.0.0', 'v1.1.0', 'v1.2.0'].map((version, i) => ({
          version,
          files: { 'bugs.go': 'package bugs\n', 'data.bin': incompressible(1 << 20, 70 + i) },
        })),
      },
    ],
  });
  up = await startTestUpstream({ root: world.downloadDir });
});
afterAll(cleanupAll);

function withHook(kind: 'rejection' | 'exception', workers: number): Promise<ProxyProcess> {
  return startProxy({ upstream: up.url, workers, env: { NODE_OPTIONS: `--import=${hook}`, GMP_TEST_BUG: kind } });
}

/** The pids of the processes that answered requests (workers, or the one process). */
function servingPids(p: ProxyProcess): Set<unknown> {
  return new Set(
    p
      .logs()
      .filter((l) => l.log === 'access')
      .map((l) => l.pid),
  );
}

test('an unhandled rejection is logged and counted; the process keeps serving', async () => {
  const p = await withHook('rejection', 1);
  expect((await get(`${p.url}/${M}/@v/v1.0.0.info`)).status).toBe(200);
  process.kill(p.proc.pid!, 'SIGUSR2');
  const line = await p.waitForLog((l) => String(l.msg).startsWith('unhandled promise rejection'));
  expect(line.level).toBe('error');
  expect(JSON.stringify(line.err)).toContain('injected unhandled rejection');
  expect((await get(`${p.url}/${M}/@v/v1.0.0.mod`)).status).toBe(200);
  expect((await get(`${p.url}/metrics`)).text()).toMatch(/gomodproxy_bugs_total\{kind="unhandled-rejection"\} 1/);
  expect(p.proc.exitCode).toBeNull();
});

test('an uncaught exception lets the download in flight finish, then the process exits 1', async () => {
  const p = await withHook('exception', 1);
  const v = 'v1.1.0';
  up.on(`/${M}/@v/${v}.zip`, { slowBody: { chunk: 64 * 1024, intervalMs: 40 } });
  let sent = false;
  const r = await streamGet(`${p.url}/${M}/@v/${v}.zip`, () => {
    if (sent) return;
    sent = true;
    process.kill(p.proc.pid!, 'SIGUSR2');
  });
  expect(sent).toBe(true);
  expect(r.error).toBeUndefined();
  expect(r.body.equals(await readFile(world.get(`${M}@${v}`).files.zip))).toBe(true);
  expect((await p.exited).code).toBe(1);
  const fatal = p.logs().find((l) => String(l.msg).startsWith('uncaught exception'));
  expect(fatal?.level).toBe('fatal');
  expect(JSON.stringify(fatal?.err)).toContain('injected uncaught exception');
});

test('with workers, the one that hit the bug is replaced and the server keeps answering', async () => {
  const p = await withHook('exception', 2);
  const v = 'v1.2.0';
  // Requests on several connections at once, until both workers have answered some.
  const burst = (): Promise<unknown> => Promise.all(Array.from({ length: 8 }, () => get(`${p.url}/${M}/@v/${v}.info`, { connection: 'close' })));
  await waitFor(async () => {
    await burst();
    return servingPids(p).size === 2;
  }, 'both workers to answer');
  const victim = [...servingPids(p)][0] as number;
  process.kill(victim, 'SIGUSR2');
  await p.waitForLog((l) => l.msg === 'worker exited; starting a new one' && l.worker === victim);
  await waitFor(async () => {
    const r = await get(`${p.url}/${M}/@v/${v}.mod`, { connection: 'close' });
    expect(r.status).toBe(200);
    await burst();
    return servingPids(p).size === 3;
  }, 'the new worker to answer');
  expect(p.proc.exitCode).toBeNull();
});
