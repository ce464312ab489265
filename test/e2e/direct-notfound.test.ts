// The go command's package-to-module search through gomodproxy's `direct`, on a network that
// cannot reach the module's host. For an import of golang.test/x/text/cases the go command asks
// for golang.test/x/text/cases, golang.test/x/text, golang.test/x and golang.test, and needs
// "not found" for every path that is not a module. With GOPROXY=<proxy>,direct it gets that from
// its own `direct`: a repository-root lookup that fails (here ?go-get=1 on a host that never
// resolves: `.test` is reserved and this machine has no DNS) is not-exist for cmd/go. gomodproxy
// run with the same upstream list must answer the same, so `go mod tidy` through it writes the
// same go.mod and go.sum as the go command on its own.
import { lookup } from 'node:dns/promises';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createGoEnv, type GoEnv } from '../helpers/goenv.js';
import { startProxy, type ProxyProcess } from '../helpers/gomodproxy.js';
import { runGoTool } from '../helpers/gotools.js';
import { get } from '../helpers/http.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';

const HOST = 'golang.test';
const MOD = `${HOST}/x/text`;
const VERSION = 'v0.1.0';
const APP = 'example.com/app';

let tree: string;
let upstream: TestUpstream;
let proxy: ProxyProcess;

/** A GOPROXY tree holding MOD@VERSION, its zip made by golang.org/x/mod/zip from files on disk. */
async function buildTree(root: string): Promise<string> {
  const src = path.join(root, 'src');
  const files: Record<string, string> = {
    'go.mod': `module ${MOD}\n\ngo 1.21\n`,
    'cases/cases.go': `package cases\n\nimport "${MOD}/internal/fold"\n\nfunc Fold(s string) string { return fold.Simple(s) }\n`,
    'internal/fold/fold.go': 'package fold\n\nfunc Simple(s string) string { return s }\n',
    'unicode/norm/norm.go': 'package norm\n\nfunc NFC(s string) string { return s }\n',
  };
  for (const [name, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(src, name)), { recursive: true });
    await writeFile(path.join(src, name), text);
  }
  const out = path.join(root, 'proxy');
  const dir = path.join(out, MOD, '@v');
  await mkdir(dir, { recursive: true });
  const made = JSON.parse(await runGoTool('modzip', ['create', src, MOD, VERSION, path.join(dir, `${VERSION}.zip`)])) as { Err?: string };
  expect(made.Err ?? '').toBe('');
  await writeFile(path.join(dir, `${VERSION}.mod`), files['go.mod'] as string);
  await writeFile(path.join(dir, `${VERSION}.info`), JSON.stringify({ Version: VERSION, Time: '2024-01-02T03:04:05Z' }));
  await writeFile(path.join(dir, 'list'), `${VERSION}\n`);
  return out;
}

beforeAll(async () => {
  // The premise: nothing on this machine resolves the module's host, so `direct` can only fail to
  // look it up (the proxy and the go command inherit no HTTP proxy setting: the harness scrubs them).
  await expect(lookup(HOST)).rejects.toThrow();
  tree = await buildTree(await makeTempDir('direct-notfound'));
  upstream = await startTestUpstream({ root: tree });
  proxy = await startProxy({ upstream: `${upstream.url},direct` });
});
afterAll(cleanupAll);

/** A main module importing two packages of MOD (neither of them at the module's root). */
async function newApp(env: GoEnv): Promise<string> {
  const dir = await env.newModule(path.join(env.root, 'app'), APP);
  await writeFile(
    path.join(dir, 'main.go'),
    `package main\n\nimport (\n\t"fmt"\n\n\t"${MOD}/cases"\n\t"${MOD}/unicode/norm"\n)\n\nfunc main() { fmt.Println(cases.Fold(norm.NFC("x"))) }\n`,
  );
  return dir;
}

/** go mod tidy, then the build list and the packages, as the go command sees them through goproxy. */
async function tidy(goproxy: string): Promise<{ goMod: string; goSum: string; deps: string }> {
  const env = await createGoEnv({ goproxy });
  const dir = await newApp(env);
  await env.go(['mod', 'tidy'], { cwd: dir });
  const deps = await env.go(['list', '-deps', '-f', '{{.ImportPath}} {{with .Module}}{{.Path}} {{.Version}}{{end}}', './...'], { cwd: dir });
  await env.go(['build', './...'], { cwd: dir });
  return { goMod: await readFile(path.join(dir, 'go.mod'), 'utf8'), goSum: await readFile(path.join(dir, 'go.sum'), 'utf8'), deps: deps.stdout };
}

test('go mod tidy through gomodproxy (upstream,direct) writes what the go command writes with the same GOPROXY', async () => {
  const reference = await tidy(`${upstream.url},direct`);
  expect(reference.goMod).toContain(`require ${MOD} ${VERSION}\n`);
  expect(reference.goSum).toMatch(new RegExp(`^${MOD.replace(/\./g, '\\.')} ${VERSION} h1:`, 'm'));
  expect(reference.deps).toContain(`${MOD}/cases ${MOD} ${VERSION}`);
  // The go command searched the import's path prefixes; the upstream had only the module.
  expect(upstream.count(`/${MOD}/cases/@v/list`)).toBeGreaterThan(0);

  upstream.reset();
  const viaProxy = await tidy(proxy.url);
  expect(viaProxy).toEqual(reference);
  // gomodproxy asked its upstream first and then its own `direct`, as the go command did.
  expect(upstream.count(`/${MOD}/cases/@v/list`)).toBeGreaterThan(0);
});

test('a path that is not a module is "not found" with the cause and what to do in one line', async () => {
  const r = await get(`${proxy.url}/${MOD}/cases/@v/list`);
  const body = r.body.toString('utf8');
  expect(r.status).toBe(404);
  expect(body.trim().split('\n')).toHaveLength(1);
  expect(body).toContain(`${MOD}/cases: cannot look up its repository: https://${MOD}/cases?go-get=1: `);
  expect(body).toContain(HOST);
  expect(body).toMatch(/git\.repos/);
  expect(body).toMatch(/HTTPS_PROXY/);
});
