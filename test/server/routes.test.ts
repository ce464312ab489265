import { describe, expect, it } from 'vitest';
import { loadConfig, type UpstreamSpec } from '../../src/config/index.js';
import { ProxyError } from '../../src/errors.js';
import { SourceChain, makeSource } from '../../src/sources/index.js';
import { RouteTable, compileMatch, parseVersionRange } from '../../src/server/routes.js';

function table(env: Record<string, string>, yaml?: Record<string, unknown>): { t: RouteTable; chains: Map<string, UpstreamSpec[] | undefined> } {
  const config = loadConfig({ env, cwd: '/nonexistent-dir-for-test', flags: yaml ?? {} });
  const chains = new Map<string, UpstreamSpec[] | undefined>();
  const t = new RouteTable(config, (specs, label) => {
    chains.set(label, specs);
    return new SourceChain(specs ?? config.upstreams, (s) => makeSource(s), { failures: 3, cooldownMs: 1000 });
  });
  return { t, chains };
}

function forbidden(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ProxyError);
    expect((err as ProxyError).status).toBe(403);
    return (err as ProxyError).message;
  }
  throw new Error('expected a 403');
}

describe('routes', () => {
  it('sends GOPRIVATE modules direct, without the checksum database, before any other route', () => {
    const { t, chains } = table({ GOPRIVATE: 'corp.example,*.internal.example' });
    const r = t.routeFor('corp.example/team/lib');
    expect(r.private).toBe(true);
    expect(r.sumdb).toBe(false);
    expect(r.deniedAs).toBe('not-found');
    expect(chains.get('private')?.map((s) => s.kind)).toEqual(['direct']);
    expect(t.routeFor('git.internal.example/x').private).toBe(true);
    expect(t.routeFor('github.com/corp.example/x').name).toBe('default');
    expect(t.routeFor('github.com/a/b').sumdb).toBe(true);
  });

  it('GONOPROXY wins over GOPRIVATE for what is fetched direct, as in the go command', () => {
    const { t } = table({ GOPRIVATE: 'corp.example', GONOPROXY: 'none.example' });
    expect(t.routeFor('corp.example/x').private).toBe(false);
    expect(t.routeFor('none.example/x').private).toBe(true);
  });

  it('takes the first matching route, with ! exclusions, its own sources, TTL and readers', () => {
    const { t, chains } = table(
      {},
      {
        routes: [
          { match: 'corp.example/*,!corp.example/oss', sources: 'https://goproxy.corp.example|direct', ttl: '10s', read: ['group:devs'] },
          { match: ['corp.example/oss'], private: false, deniedAs: 'not-found' },
        ],
      },
    );
    const a = t.routeFor('corp.example/app');
    expect(a.name).toMatch(/^routes\[0\]/);
    expect(a.ttlMs).toBe(10_000);
    expect(a.read).toEqual(['group:devs']);
    expect(a.sumdb).toBe(true);
    expect(chains.get(a.name)?.map((s) => [s.url, s.fallthrough])).toEqual([
      ['https://goproxy.corp.example', 'any'],
      ['direct', 'not-found'],
    ]);
    const b = t.routeFor('corp.example/oss');
    expect(b.name).toMatch(/^routes\[1\]/);
    expect(b.read).toEqual(['anonymous']);
    expect(b.deniedAs).toBe('not-found');
    expect(t.routeFor('corp.example/oss/sub').name).toMatch(/^routes\[1\]/);
  });
});

describe('policy', () => {
  it('denies whole modules and version ranges with the reason', () => {
    const { t } = table(
      {},
      {
        deny: [
          { match: 'github.com/evil/*', reason: 'malware, see SEC-1' },
          { match: 'github.com/good/lib', versions: '>=v1.2.0 <v1.2.3 || v2.0.0', reason: 'CVE-2026-0001: use v1.2.3' },
        ],
      },
    );
    expect(forbidden(() => t.checkPolicy('github.com/evil/pkg'))).toBe('github.com/evil/pkg is blocked by this proxy: malware, see SEC-1');
    expect(forbidden(() => t.checkPolicy('github.com/good/lib', 'v1.2.1'))).toContain('CVE-2026-0001');
    expect(() => t.checkPolicy('github.com/good/lib', 'v1.2.3')).not.toThrow();
    expect(() => t.checkPolicy('github.com/good/lib')).not.toThrow();
    expect(t.isDeniedVersion('github.com/good/lib', 'v2.0.0')).toBe(true);
    expect(t.isDeniedVersion('github.com/good/lib', 'v1.1.9')).toBe(false);
    expect(t.hasVersionRules('github.com/good/lib')).toBe(true);
    expect(t.hasVersionRules('github.com/other/lib')).toBe(false);
  });

  it('serves only listed modules in allow-list mode', () => {
    const { t } = table({}, { allow: ['github.com/ok/*', 'golang.org/x'] });
    expect(() => t.checkPolicy('github.com/ok/a')).not.toThrow();
    expect(() => t.checkPolicy('golang.org/x/mod')).not.toThrow();
    expect(forbidden(() => t.checkPolicy('github.com/other/a'))).toMatch(/allow list/);
    expect(t.hasPolicy).toBe(true);
    expect(table({}).t.hasPolicy).toBe(false);
  });

  it('parses version ranges in Go semver order', () => {
    const r = parseVersionRange('>=v1.0.0-rc.1 <=v1.0.0');
    expect(r('v1.0.0-rc.1')).toBe(true);
    expect(r('v1.0.0-rc.2')).toBe(true);
    expect(r('v1.0.0-beta')).toBe(false);
    expect(r('v1.0.0')).toBe(true);
    expect(r('v1.0.1')).toBe(false);
    expect(() => parseVersionRange('>=1.0')).toThrow(/not <op>v1.2.3/);
  });

  it('matches patterns like GOPRIVATE, spaces not trimmed inside a string, with ! exclusions', () => {
    const m = compileMatch('example.com/*,!example.com/public');
    expect(m('example.com/a')).toBe(true);
    expect(m('example.com/a/b')).toBe(true);
    expect(m('example.com/public')).toBe(false);
    expect(m('example.com')).toBe(false);
  });
});
