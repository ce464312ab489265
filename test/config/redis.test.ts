import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, schemaLeaves } from '../../src/config/index.js';
import { errorOf } from './support.js';

async function tmpDir(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'gmp-config-'));
}

describe('redis settings', () => {
  it('are absent unless set: one host coordinates alone', async () => {
    const cwd = await tmpDir();
    expect(loadConfig({ cwd, env: {} }).redis).toBeUndefined();
  });

  it('take one server from GOMODPROXY_REDIS_URL, password and all, with the defaults', async () => {
    const cwd = await tmpDir();
    const c = loadConfig({ cwd, env: { GOMODPROXY_REDIS_URL: 'rediss://:s3cret@redis.corp:6380/2' } });
    expect(c.redis).toEqual({ url: 'rediss://:s3cret@redis.corp:6380/2', keyPrefix: 'gomodproxy:', lockTtl: 15_000 });
  });

  it('parse the key prefix and the lock TTL as a duration', async () => {
    const cwd = await tmpDir();
    const c = loadConfig({ cwd, env: { GOMODPROXY_REDIS_URL: 'redis://r', GOMODPROXY_REDIS_KEY_PREFIX: 'gmp-eu:', GOMODPROXY_REDIS_LOCK_TTL: '1m30s' } });
    expect(c.redis).toMatchObject({ keyPrefix: 'gmp-eu:', lockTtl: 90_000 });
  });

  it('take Sentinel and Cluster as lists or comma-separated strings', async () => {
    const cwd = await tmpDir();
    const s = loadConfig({ cwd, env: { GOMODPROXY_REDIS_SENTINELS: 's1:26379, [::1]:26380', GOMODPROXY_REDIS_NAME: 'mymaster' } });
    expect(s.redis).toMatchObject({ sentinels: ['s1:26379', '[::1]:26380'], name: 'mymaster' });
    const c = loadConfig({ cwd, env: { GOMODPROXY_REDIS_CLUSTER: '[redis://n1:7000, "rediss://:pw@n2:7001"]' } });
    expect(c.redis?.cluster).toEqual(['redis://n1:7000', 'rediss://:pw@n2:7001']);
    const file = path.join(cwd, 'gomodproxy.yaml');
    await writeFile(file, 'redis:\n  sentinels: [s1:26379, s2:26379]\n  name: mymaster\n  lockTtl: 30s\n');
    expect(loadConfig({ cwd, env: {} }).redis).toEqual({ sentinels: ['s1:26379', 's2:26379'], name: 'mymaster', keyPrefix: 'gomodproxy:', lockTtl: 30_000 });
  });

  it('are named as environment variables', () => {
    const names = schemaLeaves().map((l) => l.env);
    for (const n of [
      'GOMODPROXY_REDIS_URL',
      'GOMODPROXY_REDIS_SENTINELS',
      'GOMODPROXY_REDIS_NAME',
      'GOMODPROXY_REDIS_CLUSTER',
      'GOMODPROXY_REDIS_KEY_PREFIX',
      'GOMODPROXY_REDIS_LOCK_TTL',
    ]) {
      expect(names).toContain(n);
    }
  });

  it('refuse anything but exactly one of url, sentinels and cluster', async () => {
    const cwd = await tmpDir();
    const both = errorOf(() => loadConfig({ cwd, env: { GOMODPROXY_REDIS_URL: 'redis://r', GOMODPROXY_REDIS_CLUSTER: 'redis://n1:7000' } }));
    expect(both.message).toMatch(/invalid setting redis: set exactly one of url .*, sentinels with name .* or cluster/);
    const none = errorOf(() => loadConfig({ cwd, env: { GOMODPROXY_REDIS_KEY_PREFIX: 'x:' } }));
    expect(none.message).toMatch(/set exactly one of url/);
  });

  it('refuse sentinels without the master name, and a name without sentinels', async () => {
    const cwd = await tmpDir();
    expect(errorOf(() => loadConfig({ cwd, env: { GOMODPROXY_REDIS_SENTINELS: 's1:26379' } })).message).toMatch(/redis\.name: sentinels and name go together/);
    expect(errorOf(() => loadConfig({ cwd, env: { GOMODPROXY_REDIS_URL: 'redis://r', GOMODPROXY_REDIS_NAME: 'm' } })).message).toMatch(
      /sentinels and name go together/,
    );
  });

  it('refuse a URL that is not redis:// or rediss://, without echoing it', async () => {
    const cwd = await tmpDir();
    const err = errorOf(() => loadConfig({ cwd, env: { GOMODPROXY_REDIS_URL: 'http://:secret@r:6379' } }));
    expect(err.message).toMatch(/invalid setting redis\.url from environment variable GOMODPROXY_REDIS_URL: expected redis:\/\//);
    expect(err.message).not.toContain('secret');
    expect(errorOf(() => loadConfig({ cwd, env: { GOMODPROXY_REDIS_SENTINELS: 's1', GOMODPROXY_REDIS_NAME: 'm' } })).message).toMatch(/expected host:port/);
  });

  it('refuse a lock TTL shorter than a second', async () => {
    const cwd = await tmpDir();
    const err = errorOf(() => loadConfig({ cwd, env: { GOMODPROXY_REDIS_URL: 'redis://r', GOMODPROXY_REDIS_LOCK_TTL: '200ms' } }));
    expect(err.message).toMatch(/invalid setting redis\.lockTtl from environment variable GOMODPROXY_REDIS_LOCK_TTL: must be at least 1s/);
  });
});
