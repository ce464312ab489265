// Fail fast, and in the right order: every setting is checked before workers start (a bad one is
// one message and exit 2, never workers crash-looping); sign-in comes before any policy answer,
// so a denied version's reason is shown only to those who may read the module; /metrics can
// require a role; and the leftovers of crashed writers are swept from the data folder.
import { spawn } from 'node:child_process';
import { mkdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { writeHtpasswd, startProxyWithConfig, basic, writeConfig } from '../e2e-access/util.js';
import { cliEntry, startProxy } from '../helpers/gomodproxy.js';
import { get } from '../helpers/http.js';
import { scrubbedEnv } from '../helpers/proc.js';
import { cleanupAll, makeTempDir, registerCleanup } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';
import { expectOneLineError } from './util.js';

const M = 'github.com/gmp-test/startup';

let world: World;
let up: TestUpstream;

beforeAll(async () => {
  world = await buildModuleWorld({ modules: [{ path: M, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0' }] }] });
  up = await startTestUpstream({ root: world.downloadDir });
});
afterAll(cleanupAll);

/** Runs `gomodproxy serve` to its end (it must end by itself) and returns its exit code and output. */
async function serveUntilExit(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const data = await makeTempDir('startup-data');
  const child = spawn(process.execPath, [cliEntry, 'serve', '--data', data, '--upstream', up.url, ...args], {
    env: { ...scrubbedEnv(), GOSUMDB: 'off', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  registerCleanup(async () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // ended
    }
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (t: string) => (stdout += t));
  child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  return { code, stderr, stdout };
}

describe('every setting is checked before workers start', () => {
  test('a missing htpasswd file: one message naming the setting, exit 2, no worker started', async () => {
    const r = await serveUntilExit(['--workers', '2', '--listen', '127.0.0.1:0'], { GOMODPROXY_AUTH_HTPASSWD: '/nonexistent/htpasswd' });
    expect(r.code).toBe(2);
    expect(r.stderr.match(/invalid setting auth\.htpasswd/g)).toHaveLength(1);
    expect(r.stdout).not.toContain('listening');
  });

  test('an unreadable TLS certificate, and a port another process holds: exit 2 with the reason', async () => {
    const tls = await serveUntilExit(['--workers', '2', '--listen', '127.0.0.1:0'], {
      GOMODPROXY_TLS_CERT: '/nonexistent/cert.pem',
      GOMODPROXY_TLS_KEY: '/nonexistent/key.pem',
    });
    expect(tls.code).toBe(2);
    expect(tls.stderr).toMatch(/invalid setting tls: .*ENOENT/);
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    registerCleanup(() => new Promise<void>((r) => holder.close(() => r())));
    const port = (holder.address() as net.AddressInfo).port;
    const busy = await serveUntilExit(['--workers', '2', '--listen', `127.0.0.1:${port}`]);
    expect(busy.code).toBe(2);
    expect(busy.stderr).toContain(`cannot listen on 127.0.0.1:${port} (EADDRINUSE)`);
  });
});

describe('the primary and its workers', () => {
  /** The command lines of the server's processes: the primary's, then its workers'. */
  async function commandLines(pid: number): Promise<{ primary: string; workers: string[] }> {
    const line = async (p: number | string): Promise<string> => (await readFile(`/proc/${p}/cmdline`, 'utf8')).split('\0').join(' ');
    const children = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(/\s+/).filter(Boolean);
    return { primary: await line(pid), workers: await Promise.all(children.map(line)) };
  }

  test('workers run with a 4 MiB young generation unless the operator chose a size', async () => {
    const p = await startProxy({ upstream: up.url, workers: 2 });
    const { primary, workers } = await commandLines(p.proc.pid!);
    expect(workers).toHaveLength(2);
    for (const w of workers) expect(w).toContain('--max-semi-space-size=4');
    expect(primary).not.toContain('--max-semi-space-size');
    const r = await get(`${p.url}/${M}/@v/v1.0.0.info`);
    expect(r.status).toBe(200);

    const own = await startProxy({ upstream: up.url, workers: 2, env: { NODE_OPTIONS: '--max-semi-space-size=8' } });
    const mine = await commandLines(own.proc.pid!);
    for (const w of mine.workers) expect(w).not.toContain('--max-semi-space-size=4');
  });
});

describe('sign-in comes before policy', () => {
  test('on a route for signed-in readers, an anonymous client gets 401 for a denied version, a reader gets 403 with the reason', async () => {
    const dir = await makeTempDir('htpasswd');
    const htpasswd = path.join(dir, 'htpasswd');
    await writeHtpasswd(htpasswd, { alice: 'alice-password-1' });
    const reason = 'v1.1.0 is known bad (SEC-42)';
    const p = await startProxyWithConfig(
      { read: ['authenticated'], auth: { htpasswd }, deny: [{ match: M, versions: 'v1.1.0', reason }] },
      { upstream: up.url },
    );
    for (const k of ['info', 'mod', 'zip']) {
      const anon = await get(`${p.url}/${M}/@v/v1.1.0.${k}`);
      expect(expectOneLineError(anon, 401)).not.toContain('SEC-42');
      expect(anon.headers['www-authenticate']).toMatch(/^Basic /);
      const alice = await get(`${p.url}/${M}/@v/v1.1.0.${k}`, { authorization: basic('alice', 'alice-password-1') });
      expect(expectOneLineError(alice, 403)).toContain(reason);
    }
    expect((await get(`${p.url}/${M}/@v/v1.0.0.info`, { authorization: basic('alice', 'alice-password-1') })).status).toBe(200);
  });

  test('/metrics can require a role even when modules are open to everyone', async () => {
    const dir = await makeTempDir('htpasswd');
    const htpasswd = path.join(dir, 'htpasswd');
    await writeHtpasswd(htpasswd, { ops: 'ops-password-12' });
    const p = await startProxyWithConfig({ auth: { htpasswd, metrics: ['user:ops'] } }, { upstream: up.url });
    expect((await get(`${p.url}/${M}/@v/v1.0.0.info`)).status).toBe(200);
    expectOneLineError(await get(`${p.url}/metrics`), 401);
    const ok = await get(`${p.url}/metrics`, { authorization: basic('ops', 'ops-password-12') });
    expect(ok.status).toBe(200);
    expect(ok.text()).toContain('gomodproxy_requests_total');
  });

  test('with no sign-in method at all, a /metrics rule still keeps anonymous clients out', async () => {
    const file = await writeConfig({ auth: { metrics: ['authenticated'], tokens: { enabled: false } } });
    const p = await startProxy({ upstream: up.url, args: ['--config', file] });
    expectOneLineError(await get(`${p.url}/metrics`), 401);
  });
});

describe('leftovers of crashed writers are swept', () => {
  test("at start: old staging and temp files and dead holders' locks go; what a live holder has stays", async () => {
    const data = await makeTempDir('sweep-data');
    const vdir = path.join(data, M, '@v');
    const locks = path.join(data, 'state', 'locks');
    await mkdir(vdir, { recursive: true });
    await mkdir(locks, { recursive: true });
    const old = new Date(Date.now() - 3 * 3_600_000);
    const orphan = {
      partial: path.join(vdir, 'v1.0.0.zip.partial'),
      temp: path.join(vdir, 'v1.0.0.info.tmp-0123abcd'),
      lock: path.join(locks, 'dead.lock'),
    };
    await writeFile(orphan.partial, 'PK half a zip');
    await writeFile(orphan.temp, '{"Version":');
    // A holder on this host whose process is gone (pids are below 2^22 on Linux).
    await writeFile(orphan.lock, JSON.stringify({ pid: 2 ** 22 + 7, host: (await import('node:os')).hostname(), since: Date.now() }));
    for (const f of Object.values(orphan)) await utimes(f, old, old);
    // A staging file whose fetch is alive: its key's lock is held by a live process (this one).
    const { HostCoordination } = await import('../../src/cluster/coordination.js');
    const live = new HostCoordination(data);
    const held = await live.tryLock(`${M}/@v/v1.1.0.zip`);
    expect(held).not.toBeNull();
    const kept = path.join(vdir, 'v1.1.0.zip.partial');
    await writeFile(kept, 'PK streaming');
    await utimes(kept, old, old);
    const p = await startProxy({ upstream: up.url, dataDir: data });
    const line = await p.waitForLog((l) => l.msg === 'removed leftovers of interrupted writes from the data folder');
    expect(line.files).toBe(3);
    for (const f of Object.values(orphan)) await expect(stat(f)).rejects.toThrow(/ENOENT/);
    expect((await stat(kept)).isFile()).toBe(true);
    await held!.release();
  });
});
