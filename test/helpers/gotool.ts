// Go programs the tests hold our code to (versitygw, govulncheck): from an environment variable,
// else the per-machine test cache, where `go install` builds them when absent (once per machine;
// scripts/test-ci.sh does it up front, outside any test's time limit).
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describeRun, run } from './proc.js';

export interface GoTool {
  /** The binary's name (the last element of the command's package path). */
  name: string;
  /** module/cmd/path@version, as `go install` takes it. */
  module: string;
  /** The variable that names a binary to use instead (GMP_VERSITYGW). */
  envVar: string;
  /** Extra GOFLAGS for the build. */
  goflags?: string;
}

/** Where a built tool is kept between runs: $HOME/.cache/gomodproxy-test/bin/<name>. */
export function cachedGoTool(name: string): string {
  return path.join(os.homedir(), '.cache', 'gomodproxy-test', 'bin', name);
}

/** The tool's binary, built into the cache first when there is none. */
export async function goToolBinary(t: GoTool): Promise<string> {
  const fromEnv = process.env[t.envVar];
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`${t.envVar} is ${fromEnv}, which does not exist; unset it or build ${t.name} there`);
    return fromEnv;
  }
  const bin = cachedGoTool(t.name);
  if (existsSync(bin)) return bin;
  // Built into a folder of its own, then renamed into place: test processes that build at the
  // same time never see a half-written binary, and the last rename wins.
  await mkdir(path.dirname(bin), { recursive: true });
  const gobin = await mkdtemp(path.join(path.dirname(bin), '.build-'));
  try {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
    env.GOBIN = gobin;
    if (t.goflags) env.GOFLAGS = t.goflags;
    const args = ['install', t.module];
    const r = await run('go', args, { env, timeoutMs: 900_000 });
    if (r.code !== 0) throw new Error(`building ${t.name} failed; set ${t.envVar} to a ${t.name} binary instead\n${describeRun('go', args, r)}`);
    await rename(path.join(gobin, t.name), bin);
  } finally {
    await rm(gobin, { recursive: true, force: true });
  }
  return bin;
}
