import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, parseGoProxyList, schemaLeaves } from '../../src/config/index.js';
import { errorOf } from './support.js';

async function tmpDir(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'gmp-config-'));
}

async function withFile(yaml: string): Promise<{ file: string; cwd: string }> {
  const cwd = await tmpDir();
  const file = path.join(cwd, 'gomodproxy.yaml');
  await writeFile(file, yaml);
  return { file, cwd };
}

describe('defaults', () => {
  it('runs with no config at all: port 3000, ./data, upstream from GOPROXY or the Go default', async () => {
    const cwd = await tmpDir();
    const c = loadConfig({ env: {}, cwd });
    expect(c.listen).toBe('0.0.0.0:3000');
    expect(c.data).toBe(path.join(cwd, 'data'));
    expect(c.upstreams.map((u) => [u.kind, u.url, u.fallthrough])).toEqual([
      ['proxy', 'https://proxy.golang.org', 'not-found'],
      ['direct', 'direct', 'not-found'],
    ]);
    expect(c.workers).toBeGreaterThanOrEqual(1);
    expect(c.cache.ttl).toBe(60_000);
  });

  it('takes GOPROXY from the environment, dropping off and entries that point at itself', async () => {
    const cwd = await tmpDir();
    const c = loadConfig({
      env: { GOPROXY: 'http://localhost:3000,https://corp.example/go|https://mirror.example,off' },
      cwd,
    });
    expect(c.upstreams.map((u) => u.url)).toEqual(['https://corp.example/go', 'https://mirror.example']);
    expect(c.upstreams.map((u) => u.fallthrough)).toEqual(['any', 'not-found']);
    const own = loadConfig({ env: { GOPROXY: 'http://127.0.0.1:8080', GOMODPROXY_LISTEN: '127.0.0.1:8080' }, cwd });
    expect(own.upstreams.map((u) => u.url)).toEqual(['https://proxy.golang.org', 'direct']);
    const off = loadConfig({ env: { GOPROXY: 'off' }, cwd });
    expect(off.upstreams.map((u) => u.url)).toEqual(['https://proxy.golang.org', 'direct']);
  });
});

describe('sources of settings', () => {
  it('layers file < environment < flags', async () => {
    const { file, cwd } = await withFile('listen: 127.0.0.1:4000\ncache:\n  ttl: 5m\nlog:\n  level: debug\n');
    const c = loadConfig({
      file,
      cwd,
      env: { GOMODPROXY_LISTEN: '127.0.0.1:5000', GOMODPROXY_CACHE_TTL: '30s' },
      flags: { listen: '127.0.0.1:6000' },
    });
    expect(c.listen).toBe('127.0.0.1:6000');
    expect(c.cache.ttl).toBe(30_000);
    expect(c.log.level).toBe('debug');
    expect(c.configFile).toBe(file);
  });

  it('reads ./gomodproxy.yaml when present, GOMODPROXY_CONFIG otherwise', async () => {
    const { cwd } = await withFile('listen: 127.0.0.1:4001\n');
    expect(loadConfig({ cwd, env: {} }).listen).toBe('127.0.0.1:4001');
    const other = await withFile('listen: 127.0.0.1:4002\n');
    expect(loadConfig({ cwd, env: { GOMODPROXY_CONFIG: other.file } }).listen).toBe('127.0.0.1:4002');
  });

  it('names every setting as an environment variable', () => {
    const names = schemaLeaves().map((l) => l.env);
    expect(names).toContain('GOMODPROXY_LISTEN');
    expect(names).toContain('GOMODPROXY_PATH_PREFIX');
    expect(names).toContain('GOMODPROXY_CACHE_MEMORY_MAX_BYTES');
    expect(names).toContain('GOMODPROXY_TIMEOUTS_FIRST_BYTE');
    expect(names).toContain('GOMODPROXY_UPSTREAMS');
  });

  it('parses sizes, durations, numbers and lists from environment variables', async () => {
    const cwd = await tmpDir();
    const c = loadConfig({
      cwd,
      env: {
        GOMODPROXY_CACHE_MEMORY_MAX_BYTES: '64MiB',
        GOMODPROXY_WORKERS: '3',
        GOMODPROXY_LOG_ACCESS: 'false',
        GOMODPROXY_UPSTREAMS: '[{url: "https://a.example", priority: 1}, {url: "https://b.example", priority: 1}]',
        GOMODPROXY_BALANCE: 'round-robin',
      },
    });
    expect(c.cache.memory.maxBytes).toBe(64 * 2 ** 20);
    expect(c.workers).toBe(3);
    expect(c.log.access).toBe(false);
    expect(c.upstreams.map((u) => [u.url, u.priority, u.balance])).toEqual([
      ['https://a.example', 1, 'round-robin'],
      ['https://b.example', 1, 'round-robin'],
    ]);
  });

  it('fills ${VAR} in the file from the environment, so secrets stay out of it', async () => {
    const { file, cwd } = await withFile('upstreams:\n  - url: https://corp.example\n    token: ${CORP_TOKEN}\n');
    const c = loadConfig({ file, cwd, env: { CORP_TOKEN: 's3cret' } });
    expect(c.upstreams[0]?.auth).toEqual({ kind: 'bearer', token: 's3cret' });
    const err = errorOf(() => loadConfig({ file, cwd, env: {} }));
    expect(err.message).toContain('CORP_TOKEN');
    expect(err.message).toContain('upstreams.0.token');
  });
});

describe('upstreams', () => {
  it('turns credentials in a URL into an auth header and keeps them out of the URL', async () => {
    const cwd = await tmpDir();
    const c = loadConfig({ cwd, env: { GOMODPROXY_UPSTREAM: 'https://bob:p%40ss@corp.example/go,direct' } });
    expect(c.upstreams[0]).toMatchObject({ url: 'https://corp.example/go', auth: { kind: 'basic', username: 'bob', password: 'p@ss' } });
  });

  it('sorts structured upstreams by priority and keeps replica settings consistent', async () => {
    const { file, cwd } = await withFile(
      [
        'upstreams:',
        '  - { url: direct, priority: 9 }',
        '  - { url: https://b.example, priority: 1, balance: round-robin, fallthrough: any }',
        '  - { url: https://a.example, priority: 1, balance: round-robin, fallthrough: any, timeouts: { firstByte: 5s } }',
      ].join('\n'),
    );
    const c = loadConfig({ file, cwd, env: {} });
    expect(c.upstreams.map((u) => u.url)).toEqual(['https://b.example', 'https://a.example', 'direct']);
    expect(c.upstreams[1]?.timeouts.firstByte).toBe(5000);
    expect(c.upstreams[0]?.timeouts.firstByte).toBe(60_000);
    const bad = await withFile('upstreams:\n  - { url: https://a.example, balance: failover }\n  - { url: https://b.example, balance: round-robin }\n');
    expect(errorOf(() => loadConfig({ file: bad.file, cwd: bad.cwd, env: {} })).message).toMatch(/priority 0 disagree/);
  });

  it('refuses both upstream and upstreams, a list in one url, and bad schemes', async () => {
    const cwd = await tmpDir();
    expect(errorOf(() => loadConfig({ cwd, env: { GOMODPROXY_UPSTREAM: 'direct', GOMODPROXY_UPSTREAMS: '[{url: direct}]' } })).message).toMatch(/keep one/);
    expect(errorOf(() => loadConfig({ cwd, env: { GOMODPROXY_UPSTREAMS: '[{url: "https://a,https://b"}]' } })).message).toMatch(/one URL/);
    const scheme = errorOf(() => loadConfig({ cwd, env: { GOMODPROXY_UPSTREAM: 'ftp://x.example' } }));
    expect(scheme.message).toMatch(/upstream from environment variable GOMODPROXY_UPSTREAM/);
    expect(scheme.message).toMatch(/scheme ftp is not supported/);
  });
});

describe('errors name the setting, where it came from, and the fix', () => {
  it('a bad duration from the environment', async () => {
    const cwd = await tmpDir();
    const err = errorOf(() => loadConfig({ cwd, env: { GOMODPROXY_CACHE_TTL: 'soon' } }));
    expect(err.message).toBe(
      'invalid setting cache.ttl from environment variable GOMODPROXY_CACHE_TTL: expected a duration like 500ms, 30s, 5m, 1h or 7d, got "soon"',
    );
  });

  it('a bad value in the file, with the env var that could set it too', async () => {
    const { file, cwd } = await withFile('listen: nowhere\n');
    const err = errorOf(() => loadConfig({ file, cwd, env: {} }));
    expect(err.message).toContain(`invalid setting listen from config file ${file}`);
    expect(err.message).toContain('host:port');
    expect(err.message).toContain('GOMODPROXY_LISTEN');
  });

  it('a misspelt key, listing the known ones', async () => {
    const { file, cwd } = await withFile('cache:\n  tll: 5m\n');
    const err = errorOf(() => loadConfig({ file, cwd, env: {} }));
    expect(err.message).toContain('unknown setting cache.tll');
    expect(err.message).toContain('ttl');
  });

  it('an unknown GOMODPROXY_ variable', async () => {
    const cwd = await tmpDir();
    expect(errorOf(() => loadConfig({ cwd, env: { GOMODPROXY_LISTN: 'x' } })).message).toMatch(/unknown setting GOMODPROXY_LISTN/);
  });

  it('invalid YAML, with its line', async () => {
    const { file, cwd } = await withFile('listen: [\n');
    expect(errorOf(() => loadConfig({ file, cwd, env: {} })).message).toMatch(/is not valid YAML/);
  });

  it('a missing explicit config file', async () => {
    const cwd = await tmpDir();
    expect(errorOf(() => loadConfig({ file: 'nope.yaml', cwd, env: {} })).message).toMatch(/cannot read config file .*nope\.yaml/);
  });
});

describe('GOPROXY list syntax (cmd/go rules)', () => {
  it('cuts at , and |, trims, skips empties, ends at direct/off, adds https://', () => {
    expect(parseGoProxyList(' a.example/go | b.example ,, direct, c.example')).toEqual([
      { kind: 'proxy', url: 'https://a.example/go', fallthrough: 'any' },
      { kind: 'proxy', url: 'https://b.example', fallthrough: 'not-found' },
      { kind: 'direct', fallthrough: 'not-found' },
    ]);
    expect(parseGoProxyList('file:///srv/goproxy')).toEqual([{ kind: 'proxy', url: 'file:///srv/goproxy', fallthrough: 'not-found' }]);
    expect(() => parseGoProxyList('file://localhost/x')).toThrow(/file:\/\/\//);
    expect(() => parseGoProxyList('ftp://x')).toThrow(/not supported/);
  });
});
