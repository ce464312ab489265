// The real govulncheck, for checking the vulnerability database mirror against Go's own client.
// The binary comes from $GMP_GOVULNCHECK, else the per-machine test cache, where it is built
// with `go install` when absent (once per machine; scripts/test-ci.sh does it up front).
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describeRun, run } from './proc.js';

export const GOVULNCHECK_MODULE = 'golang.org/x/vuln/cmd/govulncheck@v1.9.0';

/** Where the built binary is kept between runs: $HOME/.cache/gomodproxy-test/bin/govulncheck. */
export function cachedGovulncheck(): string {
  return path.join(os.homedir(), '.cache', 'gomodproxy-test', 'bin', 'govulncheck');
}

/** The govulncheck binary, built into the cache first when there is none. */
export async function govulncheckBinary(): Promise<string> {
  const fromEnv = process.env.GMP_GOVULNCHECK;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`GMP_GOVULNCHECK is ${fromEnv}, which does not exist; unset it or build govulncheck there`);
    return fromEnv;
  }
  const bin = cachedGovulncheck();
  if (existsSync(bin)) return bin;
  // Built into a folder of its own, then renamed into place, so parallel builds never expose a half-written binary.
  await mkdir(path.dirname(bin), { recursive: true });
  const gobin = await mkdtemp(path.join(path.dirname(bin), '.build-'));
  try {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
    env.GOBIN = gobin;
    env.GOFLAGS = '-buildvcs=false';
    const args = ['install', GOVULNCHECK_MODULE];
    const r = await run('go', args, { env, timeoutMs: 900_000 });
    if (r.code !== 0) throw new Error(`building govulncheck failed; set GMP_GOVULNCHECK to a govulncheck binary instead\n${describeRun('go', args, r)}`);
    await rename(path.join(gobin, 'govulncheck'), bin);
  } finally {
    await rm(gobin, { recursive: true, force: true });
  }
  return bin;
}
