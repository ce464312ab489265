#!/usr/bin/env node
// Cold .zip from git, gomodproxy's native git source against the go command (GOPROXY=direct),
// in one run on the same repository: a module in a repository with a long history (5,000
// commits by default, made with git fast-import), first version cold, then a second version
// of the same repository (the bare-repository cache reused, the go command's VCS cache too).
//
//   npm run build && node bench/git-cold.mjs [--commits 5000] [--files 400] [--runs 5]
//
// Measured, median of --runs fresh runs each:
//   go        `go mod download -json M@v` with GOPROXY=direct and a fresh GOMODCACHE (what a
//             client does without a proxy; includes go's own .info/.mod/.zip and extraction)
//   zip       one cold GET of M/@v/v.zip from a freshly started gomodproxy (upstream direct),
//             after one request for an unrelated small module (code loaded and compiled)
//   client    the three cold GETs a go client makes (.info, .mod, .zip), in order
// then the same for a second version with the caches of the first run kept.
// Everything runs on 127.0.0.1 under a temporary folder that is removed at the end; every
// process started here is stopped, also on an error or Ctrl-C.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const CLI = path.join(REPO, 'dist', 'cli', 'main.js');
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const COMMITS = opt('commits', 5000);
const FILES = opt('files', 400);
const RUNS = opt('runs', 5);
const MOD = 'github.com/gmp-bench/history';
const WARM = 'github.com/gmp-bench/warm';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'gmp-bench-git-'));
const children = new Set();
function cleanup() {
  for (const c of children) {
    try {
      process.kill(-c.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  rmSync(tmp, { recursive: true, force: true });
}
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(GO|GIT_|GOMODPROXY_)/.test(k)));
const gitConfig = path.join(tmp, 'gitconfig');
const home = path.join(tmp, 'home');
mkdirSync(home);
const env = { ...baseEnv, HOME: home, GIT_CONFIG_GLOBAL: gitConfig, GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0' };

function run(cmd, argv, opts = {}) {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, argv, { cwd: opts.cwd ?? tmp, env: opts.env ?? env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    children.add(c);
    const out = [];
    let err = '';
    c.stdout.on('data', (b) => out.push(b));
    c.stderr.on('data', (b) => (err += b));
    c.on('error', reject);
    c.on('close', (code) => {
      children.delete(c);
      if (code !== 0) reject(new Error(`${cmd} ${argv.join(' ')} exited ${code}: ${err}`));
      else resolve(Buffer.concat(out).toString());
    });
    c.stdin.on('error', () => undefined);
    c.stdin.end(opts.input ?? '');
  });
}

async function makeRepo() {
  const dir = path.join(tmp, 'history');
  await run('git', ['init', '-q', '-b', 'main', dir]);
  // 5,000 commits: each changes one of FILES Go files (~8 KB each); tags along the way.
  const t0 = 1_672_531_200;
  let s = '';
  const body = (i, f) => `package history\n\n// file ${f}, revision ${i}\n${'// filler line for a realistic file size\n'.repeat(200)}`;
  for (let i = 0; i < COMMITS; i++) {
    const t = t0 + i * 60;
    const msg = `commit ${i}\n`;
    s += `commit refs/heads/main\nmark :${i + 1}\nauthor b <b@example.com> ${t} +0000\ncommitter b <b@example.com> ${t} +0000\ndata ${msg.length}\n${msg}`;
    if (i === 0) {
      const gomod = `module ${MOD}\n\ngo 1.21\n`;
      s += `M 100644 inline go.mod\ndata ${gomod.length}\n${gomod}\n`;
      for (let f = 0; f < FILES; f++) {
        const b = body(i, f);
        s += `M 100644 inline pkg${f % 20}/f${f}.go\ndata ${Buffer.byteLength(b)}\n${b}\n`;
      }
    } else {
      const f = i % FILES;
      const b = body(i, f);
      s += `M 100644 inline pkg${f % 20}/f${f}.go\ndata ${Buffer.byteLength(b)}\n${b}\n`;
    }
    if ((i + 1) % 500 === 0) s += `reset refs/tags/v1.${(i + 1) / 500 - 1}.0\nfrom :${i + 1}\n\n`;
  }
  await run('git', ['fast-import', '--quiet'], { cwd: dir, input: s });
  await run('git', ['-C', dir, 'gc', '-q']);
  await run('git', ['config', '--file', gitConfig, `url.file://${dir}.insteadOf`, `https://${MOD}`]);
  // A small unrelated module, to warm a freshly started server up (a proxy runs for days; its
  // first-ever request pays for loading and compiling code, which is not what is measured here).
  const warm = path.join(tmp, 'warm');
  await run('git', ['init', '-q', '-b', 'main', warm]);
  const w = `commit refs/heads/main\ncommitter b <b@example.com> 1672531200 +0000\ndata 2\nw\nM 100644 inline go.mod\ndata ${WARM.length + 8}\nmodule ${WARM}\n\nM 100644 inline w.go\ndata 10\npackage w\n\nreset refs/tags/v0.1.0\nfrom refs/heads/main\n\n`;
  await run('git', ['fast-import', '--quiet'], { cwd: warm, input: w });
  await run('git', ['config', '--file', gitConfig, '--add', `url.file://${warm}.insteadOf`, `https://${WARM}`]);
  return dir;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (t) => `${t.toFixed(0)} ms`;

async function goDownload(modcache, version) {
  const goEnv = {
    ...env,
    GOMODCACHE: modcache,
    GOPATH: path.join(modcache, 'gopath'),
    GOPROXY: 'direct',
    GOSUMDB: 'off',
    GOFLAGS: '-modcacherw',
    GOTOOLCHAIN: 'local',
    GOENV: 'off',
    GOCACHE: path.join(tmp, 'gocache'),
  };
  const t = performance.now();
  const out = await run('go', ['mod', 'download', '-json', `${MOD}@${version}`], { env: goEnv });
  const dt = performance.now() - t;
  const sum = /"Sum": "([^"]+)"/.exec(out)?.[1];
  return { dt, sum };
}

async function startProxy(dataDir) {
  const c = spawn(process.execPath, [CLI, 'serve', '--listen', '127.0.0.1:0', '--data', dataDir, '--upstream', 'direct', '--workers', '1', '--no-access-log'], {
    cwd: dataDir,
    env: { ...env, GOMODPROXY_SUMDB: 'off' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  children.add(c);
  const url = await new Promise((resolve, reject) => {
    let buf = '';
    c.stdout.on('data', (b) => {
      buf += b;
      const m = /"url":"(http:\/\/[^"]+)"/.exec(buf);
      if (m) resolve(m[1].replace('localhost', '127.0.0.1'));
    });
    c.on('close', (code) => reject(new Error(`proxy exited ${code}`)));
  });
  return {
    url,
    stop: () =>
      new Promise((resolve) => {
        c.once('close', resolve);
        process.kill(-c.pid, 'SIGTERM');
      }).then(() => children.delete(c)),
  };
}

function get(url) {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let n = 0;
        res.on('data', (b) => (n += b.length));
        res.on('end', () => (res.statusCode === 200 ? resolve(n) : reject(new Error(`${url}: ${res.statusCode}`))));
      })
      .on('error', reject);
  });
}

async function proxyTimes(proxy, version, sequence) {
  const base = `${proxy.url}/${MOD}/@v/${version}`;
  const t = performance.now();
  if (sequence) {
    await get(`${base}.info`);
    await get(`${base}.mod`);
  }
  const bytes = await get(`${base}.zip`);
  return { dt: performance.now() - t, bytes };
}

try {
  const t0 = performance.now();
  await makeRepo();
  const count = (await run('git', ['-C', path.join(tmp, 'history'), 'rev-list', '--count', 'main'])).trim();
  console.log(`repository: ${count} commits, ${FILES} files at HEAD, tags every 500 commits (built in ${ms(performance.now() - t0)})`);
  const v1 = 'v1.6.0';
  const v2 = 'v1.9.0';
  const r = { go1: [], go2: [], zip1: [], zip2: [], seq1: [], seq2: [] };
  for (let i = 0; i < RUNS; i++) {
    const mc = path.join(tmp, `mc-${i}`);
    const a = await goDownload(mc, v1);
    const b = await goDownload(mc, v2);
    r.go1.push(a.dt);
    r.go2.push(b.dt);
    for (const sequence of [false, true]) {
      const data = path.join(tmp, `data-${i}-${sequence}`);
      mkdirSync(data);
      const p = await startProxy(data);
      try {
        for (const ext of ['info', 'mod', 'zip']) await get(`${p.url}/${WARM}/@v/v0.1.0.${ext}`);
        const x = await proxyTimes(p, v1, sequence);
        const y = await proxyTimes(p, v2, sequence);
        (sequence ? r.seq1 : r.zip1).push(x.dt);
        (sequence ? r.seq2 : r.zip2).push(y.dt);
      } finally {
        await p.stop();
      }
    }
    rmSync(mc, { recursive: true, force: true });
  }
  const rows = [
    ['first version (cold)', median(r.go1), median(r.zip1), median(r.seq1)],
    ['second version, same repository', median(r.go2), median(r.zip2), median(r.seq2)],
  ];
  const range = (xs) => `${ms(Math.min(...xs))}..${ms(Math.max(...xs))}`;
  const spread = `ranges: go ${range(r.go1)} / ${range(r.go2)}; .zip ${range(r.zip1)} / ${range(r.zip2)}; sequence ${range(r.seq1)} / ${range(r.seq2)} (load average ${os.loadavg()[0].toFixed(1)} on ${os.availableParallelism()} cores)`;
  const lines = [
    `median of ${RUNS} runs; gomodproxy built from dist/, one worker, upstream direct, warmed up on another module`,
    `${''.padEnd(34)}${'go mod download'.padEnd(18)}${'gomodproxy .zip'.padEnd(18)}${'ratio'.padEnd(8)}${'.info+.mod+.zip'.padEnd(18)}ratio`,
    ...rows.map(
      ([name, go, zip, seq]) =>
        `${name.padEnd(34)}${ms(go).padEnd(18)}${ms(zip).padEnd(18)}${(zip / go).toFixed(2).padEnd(8)}${ms(seq).padEnd(18)}${(seq / go).toFixed(2)}`,
    ),
    spread,
    `aim: gomodproxy <= 0.5x the go command`,
  ];
  console.log(lines.join('\n'));
} finally {
  cleanup();
}
