// startProxy against a stand-in CLI that follows the server's contract (argv, pino JSON lines on
// stdout, a "listening" line with the url, SIGTERM = graceful exit), so the helper is proven
// independently of the real server's progress. The stand-in lives only here.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startProxy } from '../helpers/gomodproxy.js';
import { get } from '../helpers/http.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';

const fakeCli = String.raw`
import http from 'node:http';
import { spawn } from 'node:child_process';
const argv = process.argv.slice(2);
const opt = (name) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
const log = (o) => process.stdout.write(JSON.stringify({ level: 30, time: Date.now(), pid: process.pid, ...o }) + '\n');
process.stdout.write('plain text banner\n');
log({ msg: 'starting' });
if (argv.includes('--fail')) { process.stderr.write('config error: upstream "nope" is not a URL\n'); process.exit(3); }
const workers = [];
for (let i = 1; i < Number(opt('--workers') ?? 1); i++) {
  const w = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  workers.push(w);
  log({ msg: 'worker started', workerPid: w.pid });
}
if (argv.includes('--hang')) setInterval(() => {}, 1000);
else {
  const [host] = (opt('--listen') ?? '').split(':');
  const server = http.createServer((req, res) => {
    log({ msg: 'request', url: req.url });
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => /^(GOMODPROXY_|GOPROXY|GOFLAGS|HTTPS?_PROXY|CUSTOM|HOME|GIT_CONFIG)/i.test(k)));
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ argv, env, cwd: process.cwd() }));
  });
  server.listen(0, host, () => log({ msg: 'listening', url: 'http://' + host + ':' + server.address().port }));
  process.on('SIGTERM', () => { log({ msg: 'shutting down' }); server.close(() => process.exit(0)); });
}
`;

let entry: string;

beforeAll(async () => {
  entry = path.join(await makeTempDir('fake-cli'), 'main.mjs');
  await writeFile(entry, fakeCli);
});
afterAll(cleanupAll);

/** True once `pid` has exited (a zombie waiting for its reaper counts as exited); false if it is still there after a minute. */
async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 3000; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    if (/^\d+ \(.*\) Z/.test(stat)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

describe('startProxy', () => {
  test('passes the standard arguments, a scrubbed env, and resolves with the listening url', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, { GOMODPROXY_LEAK: 'x', GOPROXY: 'https://leak.invalid', HTTPS_PROXY: 'http://127.0.0.1:9', GOFLAGS: '-mod=vendor' });
    let proxy;
    try {
      proxy = await startProxy({
        entry,
        upstream: 'http://127.0.0.1:1,direct',
        args: ['--log-level', 'debug'],
        env: { CUSTOM: 'yes', GOMODPROXY_CACHE_MAX: '1GiB' },
        workers: 2,
      });
    } finally {
      process.env = saved;
    }
    expect(proxy.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const r = await get(`${proxy.url}/healthz`);
    expect(r.status).toBe(200);
    const seen = r.json<{ argv: string[]; env: Record<string, string>; cwd: string }>();
    expect(seen.argv).toEqual([
      'serve',
      '--listen',
      '127.0.0.1:0',
      '--data',
      proxy.dataDir,
      '--upstream',
      'http://127.0.0.1:1,direct',
      '--workers',
      '2',
      '--log-level',
      'debug',
    ]);
    expect(seen.cwd).toBe(proxy.dataDir);
    expect(seen.env.CUSTOM).toBe('yes');
    expect(seen.env.GOMODPROXY_CACHE_MAX).toBe('1GiB');
    for (const k of ['GOMODPROXY_LEAK', 'GOPROXY', 'HTTPS_PROXY', 'GOFLAGS']) expect(seen.env[k], k).toBeUndefined();
    expect(seen.env.HOME).not.toBe(process.env.HOME);
    expect(seen.env.GIT_CONFIG_GLOBAL).toMatch(/gitconfig$/);

    await proxy.waitForLog((l) => l.msg === 'request' && l.url === '/healthz');
    const logs = proxy.logs();
    expect(logs[0]).toEqual({ msg: 'plain text banner', nonJson: true });
    expect(logs.some((l) => l.msg === 'listening' && l.url === proxy.url)).toBe(true);
    const workerPid = Number(logs.find((l) => l.msg === 'worker started')?.workerPid);
    expect(workerPid).toBeGreaterThan(0);

    // graceful stop: exit code of the server; the worker it left behind is reaped too
    expect(await proxy.stop()).toBe(0);
    expect(proxy.logs().at(-1)?.msg).toBe('shutting down');
    expect(await gone(workerPid)).toBe(true);
    await expect(get(`${proxy.url}/healthz`)).rejects.toThrow();
  });

  test('rejects with the output when the server exits before listening', async () => {
    const err = await startProxy({ entry, args: ['--fail'] }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/^proxy exited \(code 3, signal null\) before listening/);
    expect(err?.message).toContain('config error: upstream "nope" is not a URL');
    expect(err?.message).toContain('"msg":"starting"');
  });

  test('rejects after the start timeout and kills the silent server', async () => {
    const t0 = Date.now();
    const err = await startProxy({ entry, args: ['--hang'], startTimeoutMs: 400 }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
    expect(err?.message).toMatch(/^no matching log line within 400 ms/);
    // The pid from the harness itself: on a busy machine the fake may not have logged a line yet.
    const pid = Number(/^command \(pid (\d+)\)/m.exec(err?.message ?? '')?.[1]);
    expect(pid).toBeGreaterThan(0);
    expect(await gone(pid)).toBe(true);
  });

  test('kill() ends the server and its workers at once', async () => {
    const proxy = await startProxy({ entry, workers: 3 });
    const workers = proxy
      .logs()
      .filter((l) => l.msg === 'worker started')
      .map((l) => Number(l.workerPid));
    expect(workers).toHaveLength(2);
    await proxy.kill();
    expect(await proxy.exited).toEqual({ code: null, signal: 'SIGKILL' });
    for (const pid of [proxy.proc.pid!, ...workers]) expect(await gone(pid)).toBe(true);
    // stop after kill is harmless
    expect(await proxy.stop()).toBeNull();
  });
});
