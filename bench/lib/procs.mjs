// Child processes of the benchmark: every one is started in its own process group and
// registered here, so that a normal end, an error or Ctrl-C stops all of them (and only them).
import { spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync, readdirSync, existsSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import http from 'node:http';

const live = new Set();
let cleaningUp = null;
let niceness = 0;

/**
 * Niceness for every process started from now on. Each one runs in its own session, so with the
 * kernel's autogroup scheduling (Linux default) its autogroup gets the niceness too: plain nice
 * only ranks processes within one autogroup.
 */
export function setNiceness(n) {
  niceness = n;
}

function applyNiceness(pid) {
  if (!niceness || !pid) return;
  try {
    os.setPriority(pid, niceness);
  } catch {
    // not allowed: measured at the default priority
  }
  try {
    writeFileSync(`/proc/${pid}/autogroup`, `${niceness}`);
  } catch {
    // no autogroups here
  }
}

/**
 * Starts `cmd args` in a new process group. stdout/stderr go to files (or are ignored).
 * Returns a handle with `pid`, `exited` (a promise of {code, signal}) and `stop()`.
 */
/** @param {string} name @param {string} cmd @param {string[]} args @param {{ cwd?: string, env?: NodeJS.ProcessEnv, stdout?: string, stderr?: string, stdin?: string }} [opts] */
export function start(name, cmd, args, { cwd, env, stdout, stderr, stdin } = {}) {
  const out = stdout ? openSync(stdout, 'a') : 'ignore';
  const err = stderr ? openSync(stderr, 'a') : 'ignore';
  const child = spawn(cmd, args, {
    cwd,
    env: env ?? process.env,
    stdio: /** @type {import('node:child_process').StdioOptions} */ ([stdin ?? 'ignore', out, err]),
    detached: true,
  });
  applyNiceness(child.pid);
  if (typeof out === 'number') closeSync(out);
  if (typeof err === 'number') closeSync(err);
  const handle = {
    name,
    child,
    pid: child.pid,
    done: false,
    exitInfo: null,
    exited: null,
    stop: (opts) => stopProc(handle, opts),
  };
  handle.exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      handle.done = true;
      handle.exitInfo = { code, signal };
      live.delete(handle);
      resolve(handle.exitInfo);
    });
    child.once('error', (e) => {
      handle.done = true;
      handle.exitInfo = { code: null, signal: null, error: e };
      live.delete(handle);
      resolve(handle.exitInfo);
    });
  });
  live.add(handle);
  return handle;
}

/**
 * Stops one started process: `signal` (default SIGTERM) to `target` (a pid inside its group,
 * default the process itself), then SIGKILL to the whole group after `graceMs`.
 * @param {{ signal?: NodeJS.Signals, target?: number, graceMs?: number }} [opts]
 */
export async function stopProc(h, opts = {}) {
  const { signal = 'SIGTERM', target, graceMs = 8000 } = opts;
  if (h.done) {
    killGroup(h.pid, 'SIGKILL'); // leftovers of the group, if any
    return h.exitInfo;
  }
  try {
    process.kill(target ?? h.pid, signal);
  } catch {
    // already gone
  }
  const timer = new Promise((r) => setTimeout(() => r('timeout'), graceMs));
  const res = await Promise.race([h.exited, timer]);
  if (res === 'timeout') {
    killGroup(h.pid, 'SIGKILL');
    await Promise.race([h.exited, new Promise((r) => setTimeout(r, 2000))]);
  }
  killGroup(h.pid, 'SIGKILL');
  return h.exitInfo;
}

function killGroup(pgid, signal) {
  try {
    process.kill(-pgid, signal);
  } catch {
    // the group is empty
  }
}

/** Stops everything still running (used on exit, errors and signals). */
export function stopAll() {
  if (!cleaningUp) {
    cleaningUp = Promise.all([...live].map((h) => stopProc(h, { graceMs: 3000 }))).then(() => undefined);
  }
  return cleaningUp;
}

/** Last resort on process exit: synchronous SIGKILL of every group still registered. */
function killAllSync() {
  for (const h of live) killGroup(h.pid, 'SIGKILL');
}

let installed = false;
export function installCleanupHandlers() {
  if (installed) return;
  installed = true;
  process.on('exit', killAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}: stopping every process it started...\n`);
      stopAll().finally(() => process.exit(130));
    });
  }
}

/** A free TCP port on 127.0.0.1 (bound and released at once). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (s.address());
      s.close(() => resolve(port));
    });
  });
}

/**
 * Polls `http://127.0.0.1:port/path` until it answers `status` (default 200).
 * @param {number} port
 * @param {string} path
 * @param {{ timeoutMs?: number, status?: number, proc?: { done?: boolean, name?: string, exitInfo?: unknown } }} [opts]
 */
export async function waitHttp(port, path, opts = {}) {
  const { timeoutMs = 20000, status = 200, proc } = opts;
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (proc?.done) throw new Error(`${proc.name} exited before it answered (${JSON.stringify(proc.exitInfo)})`);
    try {
      const got = await new Promise((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 1000 }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode));
        });
        req.on('error', reject);
        req.on('timeout', () => req.destroy(new Error('timeout')));
      });
      if (got === status) return;
      last = `status ${got}`;
    } catch (e) {
      last = e.message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing answered ${status} on 127.0.0.1:${port}${path} within ${timeoutMs} ms (${last})`);
}

/** Runs a command to completion, collecting stdout/stderr; registered like any other process. */
/** @param {string} name @param {string} cmd @param {string[]} args @param {{ cwd?: string, env?: NodeJS.ProcessEnv, timeoutMs?: number }} [opts] */
export function run(name, cmd, args, { cwd, env, timeoutMs = 120000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    applyNiceness(child.pid);
    const h = { name, child, pid: child.pid, done: false, exitInfo: null };
    h.exited = new Promise((r) =>
      child.once('close', (code, signal) => {
        h.done = true;
        h.exitInfo = { code, signal };
        live.delete(h);
        r(h.exitInfo);
      }),
    );
    live.add(h);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.once('error', reject);
    const timer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), timeoutMs);
    h.exited.then(({ code, signal }) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: out, stderr: err });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Memory: peak RSS of a process tree, sampled from /proc.

function childrenOf(pid) {
  const kids = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const txt = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (txt) for (const c of txt.split(/\s+/)) kids.push(Number(c));
    }
  } catch {
    // gone
  }
  return kids;
}

/** All pids in the tree rooted at `pid` (itself included). */
export function treePids(pid) {
  const out = [];
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop();
    out.push(p);
    stack.push(...childrenOf(p));
  }
  return out;
}

export function rssKiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * RSS, PSS and private dirty memory (MiB) summed over the tree of `rootPid` whose names match
 * `only`, from /proc/<pid>/smaps_rollup. RSS counts pages the processes share (the node binary,
 * forked workers' common pages) once per process; PSS divides them among their sharers, so its
 * sum is what the tree costs the machine.
 */
export function memoryOf(rootPid, only) {
  const sum = { rss: 0, pss: 0, privateDirty: 0, processes: 0 };
  for (const p of treePids(rootPid)) {
    if (only && !only.test(procName(p))) continue;
    let text;
    try {
      text = readFileSync(`/proc/${p}/smaps_rollup`, 'utf8');
    } catch {
      continue;
    }
    const kib = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
    sum.rss += kib('Rss') / 1024;
    sum.pss += kib('Pss') / 1024;
    sum.privateDirty += kib('Private_Dirty') / 1024;
    sum.processes++;
  }
  return sum;
}

export function procName(pid) {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** The RSS of each process in the tree of `rootPid` whose name matches `only`, in MiB, by pid. */
export function rssByPid(rootPid, only) {
  const out = {};
  for (const p of treePids(rootPid)) {
    if (only && !only.test(procName(p))) continue;
    out[p] = rssKiB(p) / 1024;
  }
  return out;
}

/**
 * Samples the RSS of the processes in the tree of `rootPid` whose name matches `only`
 * (e.g. /^node/ to leave out /usr/bin/time). `peak()` returns the largest sum seen, the
 * largest single process seen and the largest of each process (byPid), in MiB.
 */
/** @param {number} rootPid @param {{ intervalMs?: number, only?: RegExp }} [opts] */
export function rssSampler(rootPid, { intervalMs = 50, only } = {}) {
  let peakSum = 0;
  let peakOne = 0;
  let samples = 0;
  let lastSum = 0;
  let peakByPid = new Map();
  const tick = () => {
    let sum = 0;
    for (const p of treePids(rootPid)) {
      if (only && !only.test(procName(p))) continue;
      const r = rssKiB(p);
      sum += r;
      if (r > peakOne) peakOne = r;
      if (r > (peakByPid.get(p) ?? 0)) peakByPid.set(p, r);
    }
    lastSum = sum;
    if (sum > peakSum) peakSum = sum;
    samples++;
  };
  tick();
  const timer = setInterval(tick, intervalMs);
  return {
    now: () => {
      tick();
      return lastSum / 1024;
    },
    reset: () => {
      peakSum = 0;
      peakOne = 0;
      peakByPid = new Map();
      tick();
    },
    peak: () => ({ sumMiB: peakSum / 1024, oneMiB: peakOne / 1024, samples, byPid: Object.fromEntries([...peakByPid].map(([p, k]) => [p, k / 1024])) }),
    stop: () => clearInterval(timer),
  };
}

/** Parses GNU time -v output: peak RSS of the largest process of the tree it waited for, in MiB. */
export function parseTimeV(file) {
  if (!existsSync(file)) return null;
  const txt = readFileSync(file, 'utf8');
  const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(txt);
  const exit = /Exit status: (\d+)/.exec(txt);
  return m ? { maxRssMiB: Number(m[1]) / 1024, exitStatus: exit ? Number(exit[1]) : null } : null;
}

// ---------------------------------------------------------------------------------------------
// CPU used by everything that is not this benchmark (other sessions' tests on a shared machine):
// the sum of utime+stime+cutime+cstime over every process outside our own tree, at two moments.

const CLK_TCK = 100;

function foreignJiffies() {
  const ours = new Set(treePids(process.pid));
  let sum = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || ours.has(Number(d))) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      // fields after "(comm) ": state=0 ... utime=11 stime=12 cutime=13 cstime=14
      sum += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    } catch {
      // exited meanwhile
    }
  }
  return sum;
}

/** Starts a measurement; `stop()` returns the other processes' CPU in % of one core over the interval. */
export function foreignCpu() {
  const j0 = foreignJiffies();
  const t0 = performance.now();
  return {
    stop() {
      const secs = (performance.now() - t0) / 1000;
      return (100 * (foreignJiffies() - j0)) / CLK_TCK / secs;
    },
  };
}

export function loadAvg() {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
  } catch {
    return null;
  }
}

/** CPU seconds used so far by the live processes of the tree of `rootPid` whose name matches `only`: {user, sys, total}. */
export function treeCpuSeconds(rootPid, only) {
  let user = 0;
  let sys = 0;
  for (const p of treePids(rootPid)) {
    if (only && !only.test(procName(p))) continue;
    try {
      const s = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      user += Number(f[11]);
      sys += Number(f[12]);
    } catch {
      // exited
    }
  }
  return { user: user / CLK_TCK, sys: sys / CLK_TCK, total: (user + sys) / CLK_TCK };
}
