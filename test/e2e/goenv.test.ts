// A server started by an operator who configured Go with `go env -w`: the settings live in the go
// env file, not the environment, and the server takes them as the go command does, says in its
// 'listening' line where each came from, and warns about an entry it drops.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createGoEnv } from '../helpers/goenv.js';
import { startProxy, type LogLine } from '../helpers/gomodproxy.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';

const M = 'github.com/gmp-goenv/lib';
let world: World;
let upstream: TestUpstream;

beforeAll(async () => {
  world = await buildModuleWorld({ modules: [{ path: M, versions: [{ version: 'v1.0.0' }] }] });
  upstream = await startTestUpstream({ root: world.downloadDir });
});
afterAll(cleanupAll);

test('GOPROXY, GOPRIVATE and GONOSUMDB from `go env -w` are used, and the log says so', async () => {
  const dir = await makeTempDir('goenv-file');
  const file = path.join(dir, 'env');
  // The file as the go command writes it.
  execFileSync('go', ['env', '-w', `GOPROXY=${upstream.url},off`, 'GOPRIVATE=corp.example/*', 'GONOSUMDB=sum-free.example'], {
    env: { PATH: process.env.PATH ?? '', HOME: dir, GOENV: file, GOTOOLCHAIN: 'local' },
  });
  const proxy = await startProxy({ env: { GOENV: file } });
  const listening = await proxy.waitForLog((l) => l.msg === 'listening');
  expect({ upstream: listening.upstream, private: listening.private, noSumdb: listening.noSumdb, from: listening.from }).toEqual({
    upstream: upstream.url,
    private: 'corp.example/*',
    noSumdb: 'sum-free.example',
    from: {
      upstream: `GOPROXY in the go env file ${file}`,
      sumdb: 'GOSUMDB in the environment',
      private: `GOPRIVATE in the go env file ${file}`,
      noSumdb: `GONOSUMDB in the go env file ${file}`,
    },
  });
  const warnings = proxy.logs().filter((l: LogLine) => l.level === 40 || l.level === 'warn');
  expect(warnings.map((l) => l.msg)).toEqual([
    `GOPROXY entry off (from GOPROXY in the go env file ${file}) is not used: it would leave gomodproxy nothing to fetch from; set upstream: off (GOMODPROXY_UPSTREAM=off) to serve only the cache`,
  ]);
  // And the upstream it named is the one that answers.
  const env = await createGoEnv({ goproxy: proxy.url });
  const [r] = await env.modDownloadJson([`${M}@v1.0.0`]);
  expect(r?.Sum).toBe(world.get(`${M}@v1.0.0`).Sum);
  expect(upstream.count()).toBeGreaterThan(0);
});
