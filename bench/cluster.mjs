#!/usr/bin/env node
// Several gomodproxy instances as a cluster: over one S3 bucket (versitygw) and one Redis, behind
// nginx, on loopback. In one run, with ratios: warm hits through nginx with 1 and 3 instances;
// 200 clients on one missing zip, one instance against three; a cold miss with the S3 store
// against the disk store; memory of one instance streaming many big zips from the bucket; and
// kill -9 of a random instance at many random points of a fill, counting partial artifacts
// (must be 0) and byte-exact re-reads. See bench/README.md.
//
//   npm run build && node bench/cluster.mjs [--quick] [--shared s3|fs] [--only warm,stampede,cold,memory,kill]
//
// Everything runs on 127.0.0.1, every step is bounded in time, and every process started here
// is stopped at the end, on an error and on Ctrl-C.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fillBig, fillMain, urlPath } from './lib/fill.mjs';
import { f0, f1, f2, mdTable } from './lib/format.mjs';
import { getJson, pool, stats, timedGet } from './lib/http.mjs';
import { foreignCpu, freePort, installCleanupHandlers, parseTimeV, rssSampler, run, start, stopAll, stopProc, treeCpuSeconds, waitHttp } from './lib/procs.mjs';
import { BENCH, OUT, REPO, haveTime, warmAll, wrk } from './lib/servers.mjs';
import { NOISY_PCT, buildDist, checkTools, gitState, log, machineInfo, newRunDir, options, waitQuiet } from './lib/session.mjs';
import { dropKeys, killInstance, startInstance, startLb, startRedis, startS3, versitygwBinary, vmHwmMiB, writeClusterConfig } from './lib/cluster.mjs';

const HELP = `usage: node bench/cluster.mjs [options]     (run "npm run build" first, or pass --build)

  --quick               about 2 minutes: 3 s wrk runs, fewer versions, 20 kill rounds, 20 x 20 MiB streams
  --shared s3|fs        what the instances share: s3 (default: a versitygw bucket and a redis-server
                        of its own) or fs (one data folder with lock files: runs without the S3 store
                        and Redis coordination, and is a reference)
  --only LIST           phases: warm,stampede,cold,memory,kill (default all)
  --duration S          seconds per measured wrk run (default 8, quick 3)
  --rounds R            measured wrk runs per configuration, best counts (default 2, quick 1)
  --connections C       wrk connections (default 8)
  --threads T           wrk threads (default 1)
  --clients N           clients on the one missing zip (default 200)
  --cold-zips N         fresh zips fetched one after another per store (default 20, quick 8)
  --mem-clients N       concurrent streams in the memory run (default 100, quick 20)
  --mem-zip-mib M       size of the zips streamed in the memory run (default 50, quick 20)
  --kill-rounds N       kill -9 rounds (default 100, quick 20)
  --kill-budget S       stop the kill rounds after S seconds whatever their number (default 360, quick 120)
  --upstream-latency L  latency of the upstream for the stampede and kill runs (default 50ms)
  --seed N              seed of the random kill points (default: random, printed)
  --build               run "npm run build" first
  --wait-quiet S        wait up to S seconds for other processes to use < ${NOISY_PCT}% CPU first
`;

function parseArgs(argv) {
  const o = {
    quick: false,
    shared: 's3',
    only: new Set(['warm', 'stampede', 'cold', 'memory', 'kill']),
    duration: undefined,
    rounds: undefined,
    connections: 8,
    threads: 1,
    clients: 200,
    coldZips: undefined,
    memClients: undefined,
    memZipMiB: undefined,
    killRounds: undefined,
    killBudget: undefined,
    latencyMs: 50,
    seed: undefined,
    build: false,
    waitQuiet: 0,
  };
  const int = (v, min = 1) => Math.max(min, Math.floor(v));
  for (const { a, val, num } of options(argv)) {
    switch (a) {
      case '--quick':
        o.quick = true;
        break;
      case '--shared':
        o.shared = val();
        if (!['s3', 'fs'].includes(o.shared)) throw new Error('--shared takes s3 or fs');
        break;
      case '--only':
        o.only = new Set(
          val()
            .split(',')
            .map((s) => s.trim()),
        );
        for (const p of o.only) if (!['warm', 'stampede', 'cold', 'memory', 'kill'].includes(p)) throw new Error(`--only: unknown phase ${p}`);
        break;
      case '--duration':
        o.duration = int(num());
        break;
      case '--rounds':
        o.rounds = int(num());
        break;
      case '--connections':
        o.connections = int(num());
        break;
      case '--threads':
        o.threads = int(num());
        break;
      case '--clients':
        o.clients = int(num());
        break;
      case '--cold-zips':
        o.coldZips = int(num());
        break;
      case '--mem-clients':
        o.memClients = int(num());
        break;
      case '--mem-zip-mib':
        o.memZipMiB = int(num());
        break;
      case '--kill-rounds':
        o.killRounds = int(num());
        break;
      case '--kill-budget':
        o.killBudget = int(num());
        break;
      case '--upstream-latency': {
        const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(val());
        if (!m) throw new Error('--upstream-latency takes e.g. 50ms');
        o.latencyMs = Number(m[1]) * (m[2] === 's' ? 1000 : 1);
        break;
      }
      case '--seed':
        o.seed = int(num(), 0);
        break;
      case '--build':
        o.build = true;
        break;
      case '--wait-quiet':
        o.waitQuiet = num();
        break;
      case '--help':
      case '-h':
        process.stdout.write(HELP);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${a}\n\n${HELP}`);
    }
  }
  o.duration ??= o.quick ? 3 : 8;
  o.rounds ??= o.quick ? 1 : 2;
  o.coldZips ??= o.quick ? 8 : 20;
  o.memClients ??= o.quick ? 20 : 100;
  o.memZipMiB ??= o.quick ? 20 : 50;
  o.killRounds ??= o.quick ? 20 : 100;
  o.killBudget ??= o.quick ? 120 : 360;
  o.seed ??= Math.floor(Math.random() * 2 ** 31);
  o.tree = o.quick ? { modules: 20, versionsPer: 8 } : { modules: 40, versionsPer: 8 };
  o.big = { count: 4, minMiB: o.memZipMiB, maxMiB: o.memZipMiB };
  return o;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** mulberry32: the kill points of a run replay with --seed. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------
// The shared pieces, and stacks of instances over them

/**
 * One GOPROXY tree for the upstream: the main tree and the big tree side by side (symlinks to
 * their top folders), so one upstream serves both.
 */
function combinedRoot(runDir, trees) {
  const dir = path.join(runDir, 'upstream-root');
  for (const t of trees) {
    for (const host of readdirSync(t).filter((d) => !d.startsWith('.'))) {
      for (const owner of readdirSync(path.join(t, host))) {
        mkdirSync(path.join(dir, host), { recursive: true });
        const link = path.join(dir, host, owner);
        if (!existsSync(link)) symlinkSync(path.join(t, host, owner), link);
      }
    }
  }
  return dir;
}

async function startUpstream(runDir, name, root, latencyMs) {
  const port = await freePort();
  const h = start(
    name,
    process.execPath,
    [path.join(BENCH, 'lib', 'upstream.mjs'), '--root', root, '--port', String(port), '--upstream-latency', `${latencyMs}ms`],
    {
      stdout: path.join(runDir, `${name}.out`),
      stderr: path.join(runDir, `${name}.err`),
    },
  );
  await waitHttp(port, '/-/stats', { proc: h });
  return {
    port,
    h,
    url: `http://127.0.0.1:${port}`,
    stats: () => getJson(port, '/-/stats'),
    reset: () => getJson(port, '/-/reset').catch(() => undefined),
  };
}

let stackSeq = 0;

/**
 * Instances over one store: `store` s3 (a fresh prefix of the run's bucket, each instance its own
 * data folder) or fs (one data folder for all); with or without the run's Redis (a fresh key prefix).
 */
async function makeStack(ctx, name, { count, store, redis, upstream = ctx.upstream, presign = false }) {
  const id = `${name}-${++stackSeq}`;
  const prefix = `bench-${id}-${ctx.stamp}`.replace(/[^A-Za-z0-9-]/g, '-');
  const redisPrefix = `gmp-bench:${prefix}:`;
  const config = path.join(ctx.runDir, `${id}.yaml`);
  writeClusterConfig(config, {
    upstream: upstream.url,
    s3: store === 's3' ? ctx.s3 : null,
    bucket: ctx.bucket,
    prefix,
    redisUrl: redis ? ctx.redis.url : null,
    redisPrefix,
    presign,
  });
  const sharedData = path.join(ctx.runDir, `${id}-data`);
  const dataOf = (i) => (store === 'fs' ? sharedData : path.join(ctx.runDir, `${id}-data-${i + 1}`));
  const env = store === 's3' ? ctx.s3.env : {};
  const stack = {
    id,
    store,
    prefix,
    config,
    /** Where the objects are files: the bucket's folder under the prefix, or the shared data folder. */
    storeDir: store === 's3' ? path.join(ctx.s3.dir, ctx.bucket, prefix) : sharedData,
    instances: [],
    /** @param {number} i @param {{ timed?: boolean, data?: string }} [opt] */
    async start(i, opt = {}) {
      const inst = await startInstance(ctx.runDir, `${id}-${i + 1}-${Date.now() % 1e6}`, {
        config,
        data: opt.data ?? dataOf(i),
        env,
        // A host name each, so they coordinate as instances on several hosts do (fs: one host, one folder).
        hostname: store === 's3' ? `gmp-bench-${i + 1}` : undefined,
        timed: opt.timed ?? false,
      });
      stack.instances[i] = inst;
      return inst;
    },
    async stop() {
      await Promise.all(stack.instances.filter((x) => x && !x.h.done).map((x) => stopProc(x.h, { target: x.pid, graceMs: 15000 })));
      if (redis) await dropKeys(ctx.redis.url, redisPrefix);
    },
  };
  await Promise.all(Array.from({ length: count }, (_x, i) => stack.start(i)));
  return stack;
}

// ---------------------------------------------------------------------------------------------
// 1. Warm hits through nginx, 1 instance and 3

async function measure(o, port, pathsFile, procs) {
  const other = foreignCpu();
  const cpu0 = procs.reduce((a, p) => a + treeCpuSeconds(p.pid, p.only).total, 0);
  const w = await wrk(o, port, pathsFile, o.duration);
  const cpu1 = procs.reduce((a, p) => a + treeCpuSeconds(p.pid, p.only).total, 0);
  return { ...w, otherCpuPct: other.stop(), cpuUsPerReq: (1e6 * (cpu1 - cpu0)) / w.requests };
}

async function warmPhase(o, ctx, results) {
  const st = await makeStack(ctx, 'warm', { count: 3, store: o.shared, redis: o.shared === 's3' });
  const out = { kinds: [] };
  try {
    const kinds = {
      info: ctx.manifest.versions.map((v) => ({ path: urlPath(v, 'info') })),
      'zip 1MiB': ctx.manifest.versions.filter((v) => v.zipClass === '1m').map((v) => ({ path: urlPath(v, 'zip'), bytes: v.zipBytes })),
    };
    for (const [kind, items0] of Object.entries(kinds)) {
      // The bytes of an .info as gomodproxy sends it: asked once.
      const items = [];
      for (const it of items0) items.push({ ...it, bytes: it.bytes ?? (await timedGet(st.instances[0].port, it.path)).bytes });
      for (const inst of st.instances) await warmAll(inst.port, items, 1);
      const pathsFile = path.join(ctx.runDir, `warm-${kind.replace(/\W/g, '')}.paths`);
      writeFileSync(pathsFile, `${items.map((i) => i.path).join('\n')}\n`);
      const lb1 = await startLb(ctx.runDir, `lb1-${kind.replace(/\W/g, '')}`, [`127.0.0.1:${st.instances[0].port}`]);
      const lb3 = await startLb(
        ctx.runDir,
        `lb3-${kind.replace(/\W/g, '')}`,
        st.instances.map((i) => `127.0.0.1:${i.port}`),
      );
      const configs = [
        { label: 'direct, 1 instance', port: st.instances[0].port, procs: [st.instances[0]] },
        { label: 'nginx, 1 instance', port: lb1.port, procs: [st.instances[0], lb1] },
        { label: 'nginx, 3 instances', port: lb3.port, procs: [...st.instances, lb3] },
      ];
      const runs = new Map(configs.map((c) => [c.label, []]));
      for (let r = 0; r < o.rounds; r++) {
        for (const c of r % 2 === 0 ? configs : [...configs].reverse()) {
          await wrk(o, c.port, pathsFile, 1); // warm-up: connections, JIT
          const m = await measure(o, c.port, pathsFile, c.procs);
          runs.get(c.label).push(m);
          log(`warm ${kind} ${c.label}: ${f0(m.rps)} req/s, p99 ${f1(m.latencyMs.p99)} ms, errors ${m.errors}`);
        }
      }
      await lb1.stop();
      await lb3.stop();
      const best = (label) => runs.get(label).reduce((a, b) => (b.rps > a.rps ? b : a));
      out.kinds.push({ kind, rows: configs.map((c) => ({ label: c.label, ...best(c.label) })) });
    }
  } finally {
    await st.stop();
  }
  results.warm = out;
}

// ---------------------------------------------------------------------------------------------
// 2. Many clients on one missing zip: one instance, then three

async function stampedePhase(o, ctx, results) {
  const st = await makeStack(ctx, 'stampede', { count: 3, store: o.shared, redis: o.shared === 's3', upstream: ctx.slowUpstream });
  const zips = ctx.manifest.versions.filter((v) => v.zipClass === '3m');
  const rows = [];
  try {
    for (const [label, zip, over] of [
      ['1 instance', zips[0], [st.instances[0]]],
      ['3 instances', zips[1], st.instances],
    ]) {
      await ctx.slowUpstream.reset();
      const t0 = performance.now();
      const got = await Promise.all(
        Array.from({ length: o.clients }, (_x, i) =>
          timedGet(over[i % over.length].port, urlPath(zip, 'zip')).then(
            (r) => ({ ...r, doneMs: performance.now() - t0 }),
            (err) => ({ status: 0, bytes: 0, doneMs: performance.now() - t0, error: err.message }),
          ),
        ),
      );
      const s = await ctx.slowUpstream.stats();
      const bad = got.filter((g) => g.status !== 200 || g.bytes !== zip.zipBytes).length;
      const done = stats(got.map((g) => g.doneMs));
      rows.push({ label, clients: o.clients, zipMiB: zip.zipBytes / 2 ** 20, upstreamZipRequests: s.zip, lastByteMs: done.max, p50Ms: done.p50, bad });
      log(`stampede ${label}: ${s.zip} upstream zip request(s), last byte after ${f0(done.max)} ms, ${bad} bad`);
    }
  } finally {
    await st.stop();
  }
  results.stampede = { rows, ratio: rows[1].lastByteMs / rows[0].lastByteMs };
}

// ---------------------------------------------------------------------------------------------
// 3. Cold misses: the S3 store against the disk store

const keepAlive = () => new http.Agent({ keepAlive: true, maxSockets: 1 });

async function coldPhase(o, ctx, results) {
  const zips = ctx.manifest.versions.filter((v) => v.zipClass === '1m').slice(0, o.coldZips);
  const direct = [];
  const a = keepAlive();
  for (const z of zips) direct.push((await timedGet(ctx.upstream.port, urlPath(z, 'zip'), a)).ms);
  a.destroy();
  const rows = [{ label: 'upstream, direct', ...stats(direct), total: direct.reduce((x, y) => x + y, 0), bad: 0 }];
  const configs = [{ label: 'disk store', store: 'fs', redis: false }];
  if (o.shared === 's3') configs.push({ label: 'S3 store', store: 's3', redis: false }, { label: 'S3 store + Redis', store: 's3', redis: true });
  for (const c of configs) {
    const st = await makeStack(ctx, `cold-${c.store}${c.redis ? '-redis' : ''}`, { count: 1, store: c.store, redis: c.redis });
    try {
      const agent = keepAlive();
      // One untimed miss first: the instance's connections to the upstream and the store are open.
      await timedGet(
        st.instances[0].port,
        urlPath(
          ctx.manifest.versions.find((v) => v.zipClass === '2k'),
          'zip',
        ),
        agent,
      );
      const ms = [];
      let bad = 0;
      for (const z of zips) {
        const r = await timedGet(st.instances[0].port, urlPath(z, 'zip'), agent);
        if (r.status !== 200 || r.bytes !== z.zipBytes) bad++;
        ms.push(r.ms);
      }
      agent.destroy();
      rows.push({ label: c.label, ...stats(ms), total: ms.reduce((x, y) => x + y, 0), bad });
      log(`cold ${c.label}: ${zips.length} zips, mean ${f1(stats(ms).mean)} ms`);
    } finally {
      await st.stop();
    }
  }
  results.cold = { zips: zips.length, zipMiB: zips[0]?.zipBytes / 2 ** 20, rows };
}

// ---------------------------------------------------------------------------------------------
// 4. Memory of one instance streaming many big zips from the store

/**
 * GET following one redirect (a presigned URL of the store), keeping only the byte count: the
 * bytes then come from the store, not from the instance.
 */
function getFollowing(port, p) {
  return timedGet(port, p).then((r) => {
    if (r.status !== 302) return { ...r, redirected: false };
    const u = new URL(String(r.headers.location));
    return timedGet(Number(u.port), `${u.pathname}${u.search}`).then((x) => ({ ...x, redirected: true }));
  });
}

async function memoryPhase(o, ctx, results, presign = false) {
  const st = await makeStack(ctx, presign ? 'presign' : 'memory', { count: 1, store: o.shared, redis: o.shared === 's3', presign });
  const zips = ctx.big.versions;
  let row;
  try {
    // Into the store first, through the instance; then a fresh, measured instance reads them back.
    for (const z of zips) {
      const r = await timedGet(st.instances[0].port, urlPath(z, 'zip'));
      if (r.status !== 200 || r.bytes !== z.zipBytes) throw new Error(`filling the store: ${z.module}: ${r.status}, ${r.bytes} bytes`);
    }
    await stopProc(st.instances[0].h, { target: st.instances[0].pid, graceMs: 15000 });
    // (S3: a data folder of its own, so nothing of the filler's is at hand; fs: the folder is the store.)
    const inst = await st.start(0, { timed: true, data: o.shared === 's3' ? path.join(ctx.runDir, `${st.id}-data-measured`) : undefined });
    await sleep(500);
    const idle = vmHwmMiB(inst.pid);
    const sampler = rssSampler(inst.pid, { only: /^node/, intervalMs: 25 });
    const other = foreignCpu();
    const cpu0 = treeCpuSeconds(inst.pid, /^node/).total;
    const t0 = performance.now();
    const got = await Promise.all(
      Array.from({ length: o.memClients }, (_x, i) =>
        getFollowing(inst.port, urlPath(zips[i % zips.length], 'zip')).catch((err) => ({ status: 0, bytes: 0, redirected: false, error: err.message })),
      ),
    );
    const secs = (performance.now() - t0) / 1000;
    const instanceCpuSeconds = treeCpuSeconds(inst.pid, /^node/).total - cpu0;
    sampler.stop();
    const hwm = vmHwmMiB(inst.pid);
    const bytes = got.reduce((x, g) => x + g.bytes, 0);
    const bad = got.filter((g, i) => g.status !== 200 || g.bytes !== zips[i % zips.length].zipBytes).length;
    const otherCpuPct = other.stop();
    await stopProc(inst.h, { target: inst.pid, graceMs: 15000 });
    const tv = parseTimeV(inst.timeFile);
    row = {
      presign,
      redirected: got.filter((g) => g.redirected).length,
      instanceCpuSeconds,
      source: o.shared === 's3' ? 'S3 bucket' : 'data folder',
      clients: o.memClients,
      zipMiB: zips[0].zipBytes / 2 ** 20,
      distinct: zips.length,
      totalMiB: bytes / 2 ** 20,
      seconds: secs,
      mibPerSec: bytes / 2 ** 20 / secs,
      idleMiB: idle,
      peakSampledMiB: sampler.peak().oneMiB,
      vmHwmMiB: hwm,
      timeVMaxMiB: tv?.maxRssMiB ?? null,
      bad,
      otherCpuPct,
    };
    log(
      `${presign ? 'presign' : 'memory'}: ${o.memClients} x ${f0(row.zipMiB)} MiB from the ${row.source}: ${f0(row.totalMiB)} MiB in ${f1(secs)} s; instance CPU ${f1(instanceCpuSeconds)} s; RSS idle ${f0(idle)} -> peak ${f0(hwm)} MiB; ${row.redirected} redirected; ${bad} bad`,
    );
  } finally {
    await st.stop();
  }
  if (presign) results.presign = row;
  else results.memory = row;
}

// ---------------------------------------------------------------------------------------------
// 5. kill -9 of a random instance at random points of a fill

/** GET keeping only the body's SHA-256 and length. */
function getSha(port, p, timeoutMs = 60000) {
  return new Promise((resolve) => {
    const h = createHash('sha256');
    let bytes = 0;
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false, timeout: timeoutMs }, (res) => {
      res.on('data', (c) => {
        h.update(c);
        bytes += c.length;
      });
      res.on('end', () => resolve({ status: res.statusCode, bytes, sha: h.digest('hex') }));
      res.on('error', (e) => resolve({ status: res.statusCode, bytes, sha: '', error: e.message }));
    });
    req.on('error', (e) => resolve({ status: 0, bytes, sha: '', error: e.message }));
    req.on('timeout', () => req.destroy(new Error('timed out')));
  });
}

const shaCache = new Map();
function treeSha(root, rel) {
  let s = shaCache.get(rel);
  if (s === undefined) {
    const f = path.join(root, rel);
    s = existsSync(f) ? createHash('sha256').update(readFileSync(f)).digest('hex') : null;
    shaCache.set(rel, s);
  }
  return s;
}

/** Every artifact file in the store compared with the tree: the ones that are not the tree's own bytes are partial. */
function judgeStore(root, storeDir) {
  const out = { artifacts: 0, partial: [], staging: [] };
  const walk = (dir, rel) => {
    for (const e of existsSync(dir) ? readdirSync(dir, { withFileTypes: true }) : []) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (rel === '' && (e.name === 'state' || e.name === 'staging' || e.name.startsWith('.'))) continue;
        walk(path.join(dir, e.name), r);
      } else if (/\.(partial|tmp)$|\.tmp-/.test(e.name)) out.staging.push(r);
      else if (/\/@v\/[^/]+\.(info|mod|zip)$/.test(r)) {
        out.artifacts++;
        const mine = readFileSync(path.join(dir, e.name));
        if (r.endsWith('.info')) {
          const want = existsSync(path.join(root, r)) ? JSON.parse(readFileSync(path.join(root, r), 'utf8')) : null;
          let got = null;
          try {
            got = JSON.parse(mine.toString('utf8'));
          } catch {
            // cut: not JSON
          }
          if (!want || !got || got.Version !== want.Version || got.Time !== want.Time) out.partial.push(r);
        } else if (createHash('sha256').update(mine).digest('hex') !== treeSha(root, r)) out.partial.push(r);
      }
    }
  };
  walk(storeDir, '');
  return out;
}

function countPartials(dir) {
  let n = 0;
  const walk = (d) => {
    for (const e of existsSync(d) ? readdirSync(d, { withFileTypes: true }) : []) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else if (e.name.endsWith('.partial')) n++;
    }
  };
  walk(dir);
  return n;
}

async function killPhase(o, ctx, results) {
  const random = rng(o.seed);
  const st = await makeStack(ctx, 'kill', { count: 3, store: o.shared, redis: o.shared === 's3', upstream: ctx.slowUpstream });
  const vs = ctx.manifest.versions;
  const big = ctx.big.versions;
  const started = performance.now();
  const r = { seed: o.seed, rounds: 0, victimRequests: 0, victimFailed: 0, survivorRequests: 0, survivorFailed: 0, survivorProblems: [], asked: [] };
  try {
    for (let round = 0; round < o.killRounds; round++) {
      if ((performance.now() - started) / 1000 > o.killBudget) {
        log(`kill: budget of ${o.killBudget} s used up after ${round} rounds`);
        break;
      }
      const fill = [vs[(2 * round) % vs.length], vs[(2 * round + 1) % vs.length]];
      // Every tenth round also a big zip: its upload to the bucket has several parts.
      if (round % 10 === 9 && big[Math.floor(round / 10)]) fill.push(big[Math.floor(round / 10)]);
      const asked = fill.flatMap((v) => ['info', 'mod', 'zip'].map((k) => urlPath(v, k)));
      r.asked.push(...asked);
      const insts = [...st.instances];
      const gets = insts.flatMap((inst) => asked.map((p) => getSha(inst.port, p).then((g) => ({ inst, p, g }))));
      const victimAt = Math.floor(random() * insts.length);
      const delayMs = Math.floor(random() * (fill.length > 2 ? 1500 : 300));
      await sleep(delayMs);
      const victim = insts[victimAt];
      await killInstance(victim);
      const restarted = st.start(victimAt);
      for (const { inst, p, g } of await Promise.all(gets)) {
        const ok = g.status === 200 && !g.error && g.sha === expectedSha(ctx, p);
        if (inst === victim) {
          r.victimRequests++;
          if (!ok) r.victimFailed++;
        } else {
          r.survivorRequests++;
          if (!ok) {
            r.survivorFailed++;
            if (r.survivorProblems.length < 10) r.survivorProblems.push(`round ${round}: ${inst.name} ${p}: ${g.status} ${g.error ?? ''} ${g.bytes} bytes`);
          }
        }
      }
      await restarted;
      r.rounds = round + 1;
      if (round % 10 === 9) log(`kill: ${round + 1} rounds`);
    }
    // Every artifact of the fill, through every instance, byte for byte.
    const unique = [...new Set(r.asked)];
    let exact = 0;
    let reads = 0;
    const wrong = [];
    await pool(
      st.instances.flatMap((inst) => unique.map((p) => ({ inst, p }))),
      8,
      async ({ inst, p }) => {
        const g = await getSha(inst.port, p);
        reads++;
        if (g.status === 200 && g.sha === expectedSha(ctx, p)) exact++;
        else if (wrong.length < 10) wrong.push(`${inst.name} ${p}: ${g.status} ${g.error ?? ''}`);
      },
    );
    const judged = judgeStore(ctx.root, st.storeDir);
    const uploads = o.shared === 's3' ? await ctx.s3.openUploads(ctx.bucket, st.prefix) : [];
    const stagingLeft = st.instances.reduce((n, inst) => n + countPartials(path.join(inst.data, o.shared === 's3' ? 'staging' : '')), 0);
    Object.assign(r, {
      seconds: (performance.now() - started) / 1000,
      rereads: reads,
      rereadsExact: exact,
      rereadProblems: wrong,
      storeArtifacts: judged.artifacts,
      partialArtifacts: judged.partial.length,
      partialExamples: judged.partial.slice(0, 10),
      openUploads: uploads.length,
      stagingLeft,
    });
    log(
      `kill: ${r.rounds} rounds, ${judged.partial.length} partial artifacts of ${judged.artifacts}, re-reads ${exact}/${reads} exact, ${uploads.length} open uploads`,
    );
  } finally {
    await st.stop();
  }
  delete r.asked;
  results.kill = r;
}

/** The tree's bytes: gomodproxy re-encodes an .info with the fields the go command reads, which is how the tree writes them. */
function expectedSha(ctx, p) {
  return treeSha(ctx.root, p.slice(1));
}

// ---------------------------------------------------------------------------------------------
// Report

function report(o, results) {
  const L = [];
  L.push(`# gomodproxy cluster benchmark (${o.shared === 's3' ? 'S3 bucket + Redis' : 'one shared data folder'})`);
  L.push('');
  L.push(
    `${results.startedAt}, ${results.machine.cpus} cores (${results.machine.cpuModel}), node ${results.machine.node}, git ${results.gitHead}${results.gitDirty ? ' (src dirty)' : ''}; ${o.quick ? 'quick' : 'full'} run`,
  );
  if (results.warm) {
    L.push('', '## Warm hits through nginx', '');
    L.push(
      `On ${results.machine.cpus} cores, the instances, nginx and wrk share the same cores: this shows what nginx and more instances cost, not how a cluster scales (on separate hosts each instance brings its own cores).`,
      '',
    );
    for (const k of results.warm.kinds) {
      const base = k.rows.find((x) => x.label === 'nginx, 1 instance');
      const direct = k.rows.find((x) => x.label === 'direct, 1 instance');
      L.push(`### ${k.kind}`, '');
      L.push(
        mdTable(
          ['', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'CPU µs/req', 'vs nginx 1', 'other CPU %'],
          k.rows.map((x) => [
            x.label,
            f0(x.rps),
            f2(x.latencyMs.p50),
            f2(x.latencyMs.p99),
            x.errors,
            f0(x.cpuUsPerReq),
            f2(x.rps / base.rps),
            f0(x.otherCpuPct),
          ]),
        ),
      );
      L.push('', `nginx in front of 1 instance: ${f2(base.rps / direct.rps)} of its direct req/s.`, '');
    }
  }
  if (results.stampede) {
    L.push('## One missing zip, many clients at once', '');
    L.push(
      mdTable(
        ['', 'clients', 'zip MiB', 'upstream zip requests', 'last byte ms', 'p50 ms', 'bad'],
        results.stampede.rows.map((x) => [x.label, x.clients, f1(x.zipMiB), x.upstreamZipRequests, f0(x.lastByteMs), f0(x.p50Ms), x.bad]),
      ),
    );
    L.push('', `Time to the last byte, 3 instances ÷ 1: ${f2(results.stampede.ratio)}. Upstream requests must be 1 in both rows (one fetch per key).`, '');
  }
  if (results.cold) {
    const fs = results.cold.rows.find((x) => x.label === 'disk store');
    L.push(`## Cold misses: ${results.cold.zips} fresh zips of ${f1(results.cold.zipMiB)} MiB, one after another, through one instance`, '');
    L.push(
      mdTable(
        ['', 'mean ms', 'p50 ms', 'p99 ms', 'total ms', 'vs disk store', 'bad'],
        results.cold.rows.map((x) => [
          x.label,
          f1(x.mean),
          f1(x.p50),
          f1(x.p99),
          f0(x.total),
          x.label.startsWith('upstream') ? '' : f2(x.mean / fs.mean),
          x.bad,
        ]),
      ),
    );
    L.push('');
  }
  if (results.memory) {
    const m = results.memory;
    L.push(`## Memory: ${m.clients} concurrent streams of ${f0(m.zipMiB)} MiB zips (${m.distinct} distinct) from the ${m.source}`, '');
    L.push(
      mdTable(
        ['MiB sent', 's', 'MiB/s', 'RSS idle MiB', 'peak sampled MiB', 'VmHWM MiB', 'time -v max MiB', 'bad'],
        [[f0(m.totalMiB), f1(m.seconds), f0(m.mibPerSec), f0(m.idleMiB), f0(m.peakSampledMiB), f0(m.vmHwmMiB), f0(m.timeVMaxMiB), m.bad]],
      ),
    );
    L.push('', `Peak over idle: ${f0(m.vmHwmMiB - m.idleMiB)} MiB for ${f0(m.clients * m.zipMiB)} MiB in flight (bounded memory: flat, not proportional).`, '');
    const pr = results.presign;
    if (pr) {
      L.push(`## presignZips: the same ${pr.clients} streams answered with a 302 to the store`, '');
      L.push(
        mdTable(
          ['', 's', 'instance CPU s', 'peak RSS MiB', 'redirected', 'bad'],
          [
            ['streamed by the instance', f1(m.seconds), f2(m.instanceCpuSeconds), f0(m.vmHwmMiB), m.redirected, m.bad],
            ['302 to a presigned URL', f1(pr.seconds), f2(pr.instanceCpuSeconds), f0(pr.vmHwmMiB), pr.redirected, pr.bad],
          ],
        ),
      );
      L.push(
        '',
        `Instance CPU with redirects: ${f2(pr.instanceCpuSeconds / m.instanceCpuSeconds)}x of streaming; wall time ${f2(pr.seconds / m.seconds)}x (the store serves the bytes; on one machine it competes for the same cores).`,
        '',
      );
    }
  }
  if (results.kill) {
    const k = results.kill;
    L.push(`## kill -9 of a random instance at ${k.rounds} random points of a fill (seed ${k.seed})`, '');
    L.push(
      mdTable(
        [
          'rounds',
          's',
          'partial artifacts',
          'artifacts in store',
          're-reads exact',
          'open uploads',
          'staging files left',
          'survivor requests failed',
          'victim requests failed',
        ],
        [
          [
            k.rounds,
            f0(k.seconds),
            `${k.partialArtifacts}${k.partialArtifacts === 0 ? '' : ' FAIL'}`,
            k.storeArtifacts,
            `${k.rereadsExact}/${k.rereads}${k.rereadsExact === k.rereads ? '' : ' FAIL'}`,
            k.openUploads,
            k.stagingLeft,
            `${k.survivorFailed}/${k.survivorRequests}`,
            `${k.victimFailed}/${k.victimRequests}`,
          ],
        ],
      ),
    );
    L.push(
      '',
      "Partial artifacts and inexact re-reads must be 0. Staging files of a crash are swept by the janitor once a minute old; open uploads by the store. The victim's own clients are cut off; the others' requests should all succeed.",
    );
    for (const p of [...k.partialExamples, ...k.rereadProblems, ...k.survivorProblems]) L.push(`- ${p}`);
  }
  return L.join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const o = parseArgs(process.argv.slice(2));
  installCleanupHandlers();
  const startedAt = Date.now();
  const { runDir, stamp } = newRunDir('clusterrun');
  const versions = await checkTools();
  if (o.shared === 's3') {
    if (!versitygwBinary())
      throw new Error('--shared s3 needs versitygw (GMP_VERSITYGW, or ~/.cache/gomodproxy-test/bin/versitygw); --shared fs runs without it');
    const r = await run('redis-server', 'sh', ['-c', 'command -v redis-server']);
    if (r.code !== 0) throw new Error('--shared s3 needs redis-server (Debian package redis-server); --shared fs runs without it');
  }
  const buildWarning = await buildDist(o.build);
  await waitQuiet(o.waitQuiet);
  const tree = path.join(OUT, o.quick ? 'tree-quick' : 'tree');
  log(`filling ${tree}`);
  const manifest = await fillMain(tree, o.tree);
  const bigTree = path.join(OUT, `clustertree-${o.memZipMiB}m`);
  const big = o.only.has('memory') || o.only.has('kill') ? await fillBig(bigTree, o.big) : { versions: [] };
  const root = combinedRoot(runDir, [tree, ...(big.versions.length ? [bigTree] : [])]);

  const ctx = { runDir, stamp, manifest, big, root, s3: null, bucket: 'gomodproxy-bench', redis: null, upstream: null, slowUpstream: null };
  ctx.upstream = await startUpstream(runDir, 'upstream', root, 0);
  ctx.slowUpstream = await startUpstream(runDir, 'upstream-slow', root, o.latencyMs);
  if (o.shared === 's3' || o.only.has('cold')) {
    if (versitygwBinary()) {
      ctx.s3 = await startS3(runDir, 's3', path.join(runDir, 's3'));
      await ctx.s3.bucket(ctx.bucket);
    }
  }
  if (o.shared === 's3') ctx.redis = await startRedis(runDir, 'redis');
  if (!ctx.s3 && o.only.has('cold')) log('note: no versitygw: the cold run measures the disk store only');

  /** @type {Record<string, any>} */
  const results = {
    startedAt: new Date(startedAt).toISOString(),
    seconds: 0,
    options: { ...o, only: [...o.only] },
    machine: machineInfo(versions),
    buildWarning,
    ...(await gitState()),
    haveTime,
  };
  log(`shared: ${o.shared}; seed ${o.seed}`);
  if (o.only.has('warm')) await warmPhase(o, ctx, results);
  if (o.only.has('stampede')) await stampedePhase(o, ctx, results);
  if (o.only.has('cold')) await coldPhase({ ...o, shared: ctx.s3 ? o.shared : 'fs' }, ctx, results);
  if (o.only.has('memory')) await memoryPhase(o, ctx, results);
  // The same streams answered with a 302 to a presigned URL: what the instance no longer does.
  if (o.only.has('memory') && o.shared === 's3') await memoryPhase(o, ctx, results, true);
  if (o.only.has('kill')) await killPhase(o, ctx, results);
  results.seconds = (Date.now() - startedAt) / 1000;

  const md = `${report(o, results)}\n\nWhole run: ${f0(results.seconds)} s. Logs and configs: ${path.relative(REPO, runDir)}/\n`;
  const base = `cluster-${stamp}${o.quick ? '-quick' : ''}`;
  writeFileSync(path.join(OUT, `${base}.json`), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(path.join(OUT, `${base}.md`), md);
  writeFileSync(path.join(OUT, 'cluster-latest.md'), md);
  process.stdout.write(`\n${md}\nwritten: ${path.relative(REPO, path.join(OUT, `${base}.md`))} and .json (also bench/.out/cluster-latest.md)\n`);
  // Speed is reported, never judged; a partial artifact or a wrong re-read is a broken invariant.
  const k = results.kill;
  if (k && (k.partialArtifacts !== 0 || k.rereadsExact !== k.rereads)) process.exitCode = 1;
  // The logs and configs stay; the bytes (bucket, data folders, the upstream's view) go.
  await stopAll();
  for (const d of readdirSync(runDir))
    if (d === 's3' || d === 'upstream-root' || /-data(-|$)/.test(d)) rmSync(path.join(runDir, d), { recursive: true, force: true });
}

main()
  .catch((err) => {
    process.stderr.write(`bench: ${err?.stack ?? err}\n`);
    process.exitCode = 1;
  })
  .finally(() => stopAll());
