// The peers of bench/peers/run.mjs, started from binaries the user built (nothing here builds
// them): goproxy/goproxy's `goproxy server` and gomods/athens's proxy, each on a free loopback
// port, with a disk cache of its own in front of the upstream it is given, under /usr/bin/time -v
// when there is one, in a process group of its own (lib/procs.mjs) so that it is stopped at the
// end, on an error and on Ctrl-C. Also the go command's environment and the recording relay.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { BENCH, serverPid, withTime } from '../lib/servers.mjs';
import { freePort, start, waitHttp } from '../lib/procs.mjs';

/** Every process of a server's tree except /usr/bin/time itself (Athens's go and git children count: they are its cost). */
export const NOT_TIME = /^(?!time$)/;

/**
 * The environment of every go process started here, the servers' included: the upstream and the
 * checksum database are named by the caller and nothing else of the user's Go setup leaks in
 * (GOENV=off: no `go env -w` file; GOTOOLCHAIN=local: a go line in a go.mod never downloads a
 * toolchain, which would be registry traffic nobody measures). Loopback bypasses any egress proxy.
 */
export function goEnv({ goproxy, gosumdb, extra = {} }) {
  const env = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^GO(PROXY|NOPROXY|PRIVATE|NOSUMDB|NOSUMCHECK|INSECURE|FLAGS|MODCACHE|SUMDB|ENV|TOOLCHAIN|CACHE|PATH)$/.test(k)) delete env[k];
    if (/^(HTTPS?_PROXY|https?_proxy|ALL_PROXY|all_proxy)$/.test(k)) delete env[k];
    if (k.startsWith('GOMODPROXY_') || k.startsWith('ATHENS_')) delete env[k];
  }
  return {
    ...env,
    GOPROXY: goproxy,
    GOSUMDB: gosumdb,
    GONOSUMDB: '',
    GOPRIVATE: '',
    GONOPROXY: '',
    GOENV: 'off',
    GOTOOLCHAIN: 'local',
    NO_PROXY: '127.0.0.1,localhost',
    no_proxy: '127.0.0.1,localhost',
    ...extra,
  };
}

/** `goproxy server` with the dir cacher; it reads its upstream and checksum database from GOPROXY and GOSUMDB. */
export async function startGoproxy(bin, runDir, name, { cacheDir, upstream, gosumdb }) {
  const port = await freePort();
  const tmp = path.join(runDir, `${name}-tmp`);
  mkdirSync(cacheDir, { recursive: true });
  mkdirSync(tmp, { recursive: true });
  const timeFile = path.join(runDir, `${name}.time`);
  const [cmd, argv] = withTime(timeFile, bin, ['server', '--address', `127.0.0.1:${port}`, '--cacher', 'dir', '--cacher-dir', cacheDir, '--temp-dir', tmp]);
  // Its own GOMODCACHE and GOPATH: it only runs the go command for direct fetches (none here, the
  // upstream is a proxy), and must not touch the user's.
  const env = goEnv({
    goproxy: upstream,
    gosumdb,
    extra: { GOMODCACHE: path.join(tmp, 'gomodcache'), GOPATH: path.join(tmp, 'gopath'), GOFLAGS: '-modcacherw' },
  });
  const h = start(name, cmd, argv, { cwd: runDir, env, stdout: path.join(runDir, `${name}.log`), stderr: path.join(runDir, `${name}.log`) });
  await waitHttp(port, '/healthz', { proc: h, status: 204, timeoutMs: 20000 });
  return { name, kind: 'goproxy', port, h, pid: await serverPid(h), timeFile, only: NOT_TIME, logFile: path.join(runDir, `${name}.log`) };
}

/**
 * Athens (cmd/proxy) with disk storage, configured the way its docs do it, through ATHENS_*
 * variables (no config file: there is none in runDir, so Athens takes its defaults and the
 * environment). Its go subprocesses get their GOPROXY/GOSUMDB through ATHENS_GO_BINARY_ENV_VARS
 * (its default GOPROXY=direct would go to the VCS hosts). Download mode sync, 10 go-get workers,
 * in-memory single-flight: its defaults. Log level info keeps its one line per request.
 */
export async function startAthens(bin, runDir, name, { root, upstream, gosumdb }) {
  const port = await freePort();
  const tmp = path.join(runDir, `${name}-tmp`);
  mkdirSync(root, { recursive: true });
  mkdirSync(tmp, { recursive: true });
  const timeFile = path.join(runDir, `${name}.time`);
  const [cmd, argv] = withTime(timeFile, bin, []);
  const env = {
    ...goEnv({ goproxy: upstream, gosumdb }),
    ATHENS_PORT: `127.0.0.1:${port}`,
    ATHENS_STORAGE_TYPE: 'disk',
    ATHENS_DISK_STORAGE_ROOT: root,
    ATHENS_GOGET_DIR: tmp,
    ATHENS_LOG_LEVEL: 'info',
    ATHENS_GO_BINARY_ENV_VARS: [
      `GOPROXY=${upstream}`,
      `GOSUMDB=${gosumdb}`,
      'GONOSUMDB=',
      'GOPRIVATE=',
      'GOENV=off',
      'GOTOOLCHAIN=local',
      'GOFLAGS=-modcacherw',
    ].join(';'),
  };
  const h = start(name, cmd, argv, { cwd: runDir, env, stdout: path.join(runDir, `${name}.log`), stderr: path.join(runDir, `${name}.log`) });
  await waitHttp(port, '/healthz', { proc: h, timeoutMs: 20000 });
  return { name, kind: 'athens', port, h, pid: await serverPid(h), timeFile, only: NOT_TIME, logFile: path.join(runDir, `${name}.log`) };
}

/** The recording relay (lib/relay.mjs) in front of `target`. */
export async function startRelay(runDir, name, target) {
  const port = await freePort();
  const h = start(name, process.execPath, [path.join(BENCH, 'lib', 'relay.mjs'), '--target', target, '--port', String(port)], {
    env: goEnv({ goproxy: 'off', gosumdb: 'off' }),
    stdout: path.join(runDir, `${name}.out`),
    stderr: path.join(runDir, `${name}.err`),
  });
  await waitHttp(port, '/-/counts', { proc: h });
  return { name, port, h, url: `http://127.0.0.1:${port}` };
}
