// The settings of publishing and of the vulnerability database mirror: what a route with
// publish: true becomes, and the paths the mirror may and may not be served under.
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { RouteTable } from '../../src/server/routes.js';
import type { SourceChain } from '../../src/sources/index.js';
import { errorOf } from './support.js';

const cwd = await mkdtemp(path.join(os.tmpdir(), 'gmp-cfg-'));

describe('routes with publish: true', () => {
  it('are private, never checked against the checksum database, and take no sources or sumdb: true', () => {
    const c = loadConfig({ cwd, env: { GOMODPROXY_ROUTES: '[{match: corp.example, publish: true}]' } });
    const chains: string[] = [];
    const t = new RouteTable(
      c,
      (_specs, label) => {
        chains.push(label);
        return {} as SourceChain;
      },
      () => ({ published: true }) as unknown as SourceChain,
    );
    const r = t.routeFor('corp.example/lib');
    expect(r).toMatchObject({ publish: true, private: true, sumdb: false, deniedAs: 'not-found' });
    expect(r.chain).toEqual({ published: true });
    expect(t.publishes).toBe(true);
    expect(t.routeFor('other.example/x').publish).toBe(false);
    expect(c.auth.publish).toEqual(['scope:publish']);
    expect(errorOf(() => loadConfig({ cwd, env: { GOMODPROXY_ROUTES: '[{match: corp.example, publish: true, sources: direct}]' } })).message).toMatch(
      /serves only what was published; remove its sources/,
    );
    expect(errorOf(() => loadConfig({ cwd, env: { GOMODPROXY_ROUTES: '[{match: corp.example, publish: true, sumdb: true}]' } })).message).toMatch(
      /never sent to the checksum database/,
    );
  });
});

describe('vulndb', () => {
  it('defaults to the public database under /vuln/', () => {
    expect(loadConfig({ cwd, env: {} }).vulndb).toEqual({
      enabled: true,
      url: 'https://vuln.go.dev',
      path: '/vuln/',
      ttl: 3_600_000,
      refuseVulnerable: false,
      concurrency: 8,
    });
  });

  it('takes a path without a dot in its first segment, never one the server answers itself', () => {
    expect(loadConfig({ cwd, env: { GOMODPROXY_VULNDB_PATH: 'security/vulndb' } }).vulndb.path).toBe('/security/vulndb/');
    for (const bad of ['/vuln.example/', '/sumdb/', '/-/vuln/', '/healthz/']) {
      expect(errorOf(() => loadConfig({ cwd, env: { GOMODPROXY_VULNDB_PATH: bad } })).message).toMatch(/first segment has no dot/);
    }
    expect(errorOf(() => loadConfig({ cwd, env: { GOMODPROXY_VULNDB_URL: 'ftp://x' } })).message).toMatch(/file:\/\/\/dir/);
  });
});
