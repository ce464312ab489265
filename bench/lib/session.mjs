// What every benchmark command does before it measures: a run folder under bench/.out/, the
// tools it needs, a build of dist/, a look at how busy the machine is; and what it records
// about the machine and the code measured.
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { foreignCpu, run } from './procs.mjs';
import { CLI, OUT, REPO, haveTime } from './servers.mjs';

export const NOISY_PCT = 20;

export const log = (msg) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

/**
 * Walks command-line options: yields { a, val, num } per option `a`; val() takes the next word as
 * its value, num() takes it as a non-negative number (a k or m suffix multiplies by 1024 or 1024²).
 */
export function* options(argv) {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const num = () => {
      const m = /^(\d+(?:\.\d+)?)([kKmM]?)$/.exec(val());
      if (!m) throw new Error(`${a} needs a number`);
      return Number(m[1]) * ({ k: 1024, m: 1024 * 1024 }[m[2].toLowerCase()] ?? 1);
    };
    yield { a, val, num };
  }
}

/** A fresh bench/.out/<prefix>-<time>/ for logs and configs; only the last `keep` of them stay. */
export function newRunDir(prefix = 'run', keep = 3) {
  mkdirSync(OUT, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const runDir = path.join(OUT, `${prefix}-${stamp}`);
  mkdirSync(runDir, { recursive: true });
  // Keep only the last few run folders (logs and configs).
  const old = readdirSync(OUT)
    .filter((d) => d.startsWith(`${prefix}-`))
    .sort();
  for (const d of old.slice(0, Math.max(0, old.length - keep))) rmSync(path.join(OUT, d), { recursive: true, force: true });
  return { runDir, stamp };
}

export async function checkTools() {
  const missing = [];
  for (const [tool, pkg] of [
    ['wrk', 'wrk'],
    ['nginx', 'nginx'],
  ]) {
    const r = await run(tool, 'sh', ['-c', `command -v ${tool}`]);
    if (r.code !== 0) missing.push(`${tool} (Debian package ${pkg})`);
  }
  if (missing.length) throw new Error(`missing: ${missing.join(', ')}; install with apt-get install -y wrk nginx time`);
  if (!haveTime) log('note: /usr/bin/time is missing (Debian package "time"): peak RSS comes from /proc samples only');
  const ver = async (cmd, args) => {
    const r = await run(cmd, cmd, args);
    return `${r.stdout}${r.stderr}`.split('\n')[0].trim();
  };
  return { nginx: await ver('nginx', ['-v']), wrk: await ver('wrk', ['-v']) };
}

/** `npm run build` (unless build is false); returns a warning when tsc reported type errors but emitted dist/. */
export async function buildDist(build) {
  let buildWarning;
  if (build) {
    log('npm run build');
    const r = await run('build', 'npm', ['run', 'build'], { cwd: REPO, timeoutMs: 300000 });
    if (r.code !== 0) {
      // tsc still emits on type errors; what runs is dist/ as emitted. Say so, and go on if there is one.
      const errs = `${r.stdout}${r.stderr}`.split('\n').filter((l) => /error TS/.test(l));
      buildWarning = `npm run build exited ${r.code} (${errs.length} type errors, e.g. ${errs[0] ?? '?'}); benchmarking dist/ as emitted`;
      log(`warning: ${buildWarning}`);
      if (!existsSync(CLI)) throw new Error(`npm run build failed:\n${r.stdout}${r.stderr}`);
    }
  }
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build`);
  return buildWarning;
}

/** Other work on the machine (test suites of other sessions) skews every number: measure it first, wait up to `seconds` for it to calm down. */
export async function waitQuiet(seconds) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const other = foreignCpu();
    await new Promise((r) => setTimeout(r, 1000));
    const pctNow = other.stop();
    if (pctNow <= NOISY_PCT) return pctNow;
    if (Date.now() >= deadline) {
      log(
        `warning: other processes are using ${pctNow.toFixed(0)}% CPU (of one core; ${os.availableParallelism()} cores): the figures will be noisy; see the "other CPU" columns${seconds ? '' : ' (--wait-quiet S waits for a quieter machine)'}`,
      );
      return pctNow;
    }
    log(`other processes use ${pctNow.toFixed(0)}% CPU; waiting for a quieter machine...`);
    await new Promise((r) => setTimeout(r, 4000));
  }
}

/** The machine and the tool versions, for the report. */
export function machineInfo(versions) {
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? '?',
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    ...versions,
  };
}

/** The commit measured, and whether src/ had uncommitted changes. */
export async function gitState() {
  return {
    gitHead: (await run('git', 'git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO })).stdout.trim(),
    gitDirty: (await run('git', 'git', ['status', '--porcelain', '--', 'src'], { cwd: REPO })).stdout.trim() !== '',
  };
}
