// The go command's settings made with `go env -w` live in the go env file, not the environment:
// the server reads that file as the go command does, and says where each setting came from.
// The go command itself is the reference: `go env -w` writes the file, `go env` reads it back.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { describeOrigin } from '../../src/config/load.js';
import { goEnvFile, parseGoEnvFile, readGoEnv } from '../../src/config/goenv.js';

const dirs: string[] = [];
async function tmpDir(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'gmp-goenv-'));
  dirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('which go env file', () => {
  it('follows GOENV, then the user config dir of each platform', () => {
    expect(goEnvFile({ GOENV: '/etc/go.env', HOME: '/home/a' }, 'linux')).toEqual({ file: '/etc/go.env' });
    expect(goEnvFile({ GOENV: 'off', HOME: '/home/a' }, 'linux')).toEqual({ none: 'GOENV=off' });
    expect(goEnvFile({ HOME: '/home/a' }, 'linux')).toEqual({ file: '/home/a/.config/go/env' });
    expect(goEnvFile({ HOME: '/home/a', XDG_CONFIG_HOME: '/xdg' }, 'linux')).toEqual({ file: '/xdg/go/env' });
    // A relative XDG_CONFIG_HOME is an error for os.UserConfigDir, not a fallback to HOME.
    expect(goEnvFile({ HOME: '/home/a', XDG_CONFIG_HOME: 'rel' }, 'linux')).toEqual({ none: 'the path in $XDG_CONFIG_HOME is relative' });
    // An empty GOENV or XDG_CONFIG_HOME counts as unset.
    expect(goEnvFile({ GOENV: '', HOME: '/home/a', XDG_CONFIG_HOME: '' }, 'linux')).toEqual({ file: '/home/a/.config/go/env' });
    expect(goEnvFile({}, 'linux')).toEqual({ none: 'neither $XDG_CONFIG_HOME nor $HOME is defined' });
    expect(goEnvFile({ HOME: '/Users/a' }, 'darwin')).toEqual({ file: '/Users/a/Library/Application Support/go/env' });
    expect(goEnvFile({ AppData: 'C:\\Users\\a\\AppData\\Roaming' }, 'win32')).toEqual({ file: 'C:\\Users\\a\\AppData\\Roaming\\go\\env' });
  });
});

describe('the go env file format', () => {
  it('KEY=VALUE lines cut at the first =, others ignored, the last line for a key wins', () => {
    const m = parseGoEnvFile(
      'GOPROXY=https://a.example,direct\n# comment=x\nlower=1\n=x\nno equals\n\nGOFLAGS=-mod=mod\nGOPRIVATE= spaced \nGOPROXY=https://b.example\n',
    );
    expect([...m]).toEqual([
      ['GOPROXY', 'https://b.example'],
      ['GOFLAGS', '-mod=mod'],
      ['GOPRIVATE', ' spaced '],
    ]);
  });

  it('an empty variable in the environment does not hide the file; a non-empty one wins', async () => {
    const file = path.join(await tmpDir(), 'env');
    await writeFile(file, 'GOPROXY=https://file.example\nGOPRIVATE=corp.example\nGONOSUMDB=\n');
    const g = readGoEnv({ GOENV: file, GOPROXY: '', GOPRIVATE: 'env.example' });
    expect(g.get('GOPROXY')).toEqual({ value: 'https://file.example', origin: { from: 'go-env-file', name: 'GOPROXY', file } });
    expect(g.get('GOPRIVATE')).toEqual({ value: 'env.example', origin: { from: 'go-env', name: 'GOPRIVATE' } });
    // Written empty is unset, as for the go command.
    expect(g.get('GONOSUMDB')).toBeUndefined();
  });

  it('a missing file is nothing; an unreadable one is a warning, as the go command ignores it', async () => {
    const dir = await tmpDir();
    expect(readGoEnv({ GOENV: path.join(dir, 'none') }).warnings).toEqual([]);
    const w = readGoEnv({ GOENV: dir }).warnings;
    expect(w).toHaveLength(1);
    expect(w[0]).toContain(`cannot read the go env file ${dir} (EISDIR)`);
  });

  it('reads what `go env -w` wrote, as `go env` reads it back', async () => {
    const dir = await tmpDir();
    const file = path.join(dir, 'go', 'env');
    await mkdir(path.dirname(file), { recursive: true });
    const goEnv = { PATH: process.env.PATH ?? '', HOME: dir, XDG_CONFIG_HOME: '', GOENV: file, GOTOOLCHAIN: 'local', GOFLAGS: '' };
    const settings = [
      'GOPROXY=https://a.example|https://b.example,direct',
      'GOPRIVATE=corp.example/*,*.internal',
      'GONOSUMDB=sum.example',
      'GOINSECURE=plain.example',
      'GOSUMDB=sum.golang.org',
    ];
    execFileSync('go', ['env', '-w', ...settings], { env: goEnv });
    const names = ['GOPROXY', 'GOPRIVATE', 'GONOSUMDB', 'GOINSECURE', 'GOSUMDB', 'GONOPROXY'];
    const fromGo = execFileSync('go', ['env', ...names], { env: goEnv, encoding: 'utf8' })
      .split('\n')
      .slice(0, names.length);
    const ours = readGoEnv(goEnv);
    // GONOPROXY is not in the file: the go command defaults it to GOPRIVATE, and so does the config.
    expect(names.map((n) => (n === 'GONOPROXY' ? ours.get('GOPRIVATE')?.value : ours.get(n)?.value))).toEqual(fromGo);
  });
});

describe('the config takes go settings from the go env file', () => {
  it('upstream, sumdb, private, noSumdb and git.insecure, each with where it came from', async () => {
    const cwd = await tmpDir();
    const file = path.join(cwd, 'goenv');
    await writeFile(file, 'GOPROXY=https://corp.example/go,direct\nGOSUMDB=off\nGOPRIVATE=corp.example/*\nGOINSECURE=plain.example\n');
    const c = loadConfig({ env: { GOENV: file }, cwd });
    expect(c.upstreams.map((u) => u.url)).toEqual(['https://corp.example/go', 'direct']);
    expect(c.sumdb).toBe('off');
    expect(c.private).toBe('corp.example/*');
    expect(c.noSumdb).toBe('corp.example/*');
    expect(c.git.insecure).toBe('plain.example');
    expect(Object.fromEntries(Object.entries(c.origins).map(([k, o]) => [k, describeOrigin(o)]))).toEqual({
      upstream: `GOPROXY in the go env file ${file}`,
      sumdb: `GOSUMDB in the go env file ${file}`,
      private: `GOPRIVATE in the go env file ${file}`,
      noSumdb: `GOPRIVATE in the go env file ${file}`,
      insecure: `GOINSECURE in the go env file ${file}`,
    });
    expect(c.warnings).toEqual([]);
  });

  it('the environment wins over the file, gomodproxy settings over both, and GOENV=off reads no file', async () => {
    const cwd = await tmpDir();
    const file = path.join(cwd, 'goenv');
    await writeFile(file, 'GOPROXY=https://file.example\nGONOSUMDB=file.example\n');
    const c = loadConfig({ env: { GOENV: file, GOPROXY: 'https://env.example', GOMODPROXY_NO_SUMDB: 'mine.example' }, cwd, flags: { sumdb: 'off' } });
    expect(c.upstreams.map((u) => u.url)).toEqual(['https://env.example']);
    expect(describeOrigin(c.origins.upstream)).toBe('GOPROXY in the environment');
    expect(c.noSumdb).toBe('mine.example');
    expect(describeOrigin(c.origins.noSumdb)).toBe('environment variable GOMODPROXY_NO_SUMDB');
    expect(describeOrigin(c.origins.sumdb)).toBe('the command line (--sumdb)');
    expect(describeOrigin(c.origins.private)).toBe('the defaults');
    const off = loadConfig({ env: { GOENV: 'off', HOME: cwd }, cwd });
    expect(off.upstreams.map((u) => u.url)).toEqual(['https://proxy.golang.org', 'direct']);
    expect(describeOrigin(off.origins.upstream)).toBe('the defaults');
  });

  it('finds the file under HOME as the go command does', async () => {
    const home = await tmpDir();
    await mkdir(path.join(home, '.config', 'go'), { recursive: true });
    await writeFile(path.join(home, '.config', 'go', 'env'), 'GOPROXY=https://home.example\n');
    const c = loadConfig({ env: { HOME: home }, cwd: home, goEnv: { platform: 'linux' } });
    expect(c.upstreams.map((u) => u.url)).toEqual(['https://home.example']);
  });

  it('an entry that points at this server, or off, is dropped with a warning that names it and where it came from', async () => {
    const cwd = await tmpDir();
    const file = path.join(cwd, 'goenv');
    await writeFile(file, 'GOPROXY=http://localhost:3000,https://corp.example/go,off\n');
    const c = loadConfig({ env: { GOENV: file }, cwd });
    expect(c.upstreams.map((u) => u.url)).toEqual(['https://corp.example/go']);
    expect(c.warnings).toEqual([
      `GOPROXY entry off (from GOPROXY in the go env file ${file}) is not used: it would leave gomodproxy nothing to fetch from; set upstream: off (GOMODPROXY_UPSTREAM=off) to serve only the cache`,
      `GOPROXY entry http://localhost:3000 (from GOPROXY in the go env file ${file}) points at this gomodproxy (0.0.0.0:3000) and is dropped from its upstreams; it would ask itself`,
    ]);
    const only = loadConfig({ env: { GOPROXY: 'http://127.0.0.1:3000' }, cwd });
    expect(only.upstreams.map((u) => u.url)).toEqual(['https://proxy.golang.org', 'direct']);
    expect(only.warnings[1]).toBe(
      "GOPROXY (from GOPROXY in the environment) names no upstream gomodproxy can use; using Go's default https://proxy.golang.org,direct",
    );
  });

  it('a bad GOPROXY in the file is a configuration error that names the file', async () => {
    const cwd = await tmpDir();
    const file = path.join(cwd, 'goenv');
    await writeFile(file, 'GOPROXY=ftp://x.example\n');
    expect(() => loadConfig({ env: { GOENV: file }, cwd })).toThrow(
      `invalid setting upstream: GOPROXY (from GOPROXY in the go env file ${file}) is not a valid list`,
    );
  });
});
