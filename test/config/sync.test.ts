// The sync settings: a schedule in cron syntax that can run, a time zone that exists, watched
// patterns or a prefetch file, a versions setting, one name per job; each mistake is named by
// its key (sync[0].schedule) with the fix, and offline the jobs are named as not run.
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { scheduleError } from '../../src/config/schema.js';

async function load(yaml: string, env: Record<string, string> = {}): Promise<ReturnType<typeof loadConfig>> {
  const cwd = await mkdtemp(path.join(os.tmpdir(), 'gmp-sync-config-'));
  const file = path.join(cwd, 'gomodproxy.yaml');
  await writeFile(file, yaml);
  return loadConfig({ file, cwd, env });
}

/** The message of the ConfigError the settings stop the server with. */
async function loadError(yaml: string): Promise<string> {
  try {
    await load(yaml);
  } catch (err) {
    expect((err as Error).name).toBe('ConfigError');
    return (err as Error).message;
  }
  return 'loaded without an error';
}

describe('sync schedule', () => {
  it('takes five-field cron and six fields with seconds first', () => {
    expect(scheduleError('0 3 * * *')).toBeUndefined();
    expect(scheduleError('*/30 * * * * *')).toBeUndefined();
    expect(scheduleError('0 3 * * MON-FRI')).toBeUndefined();
    expect(scheduleError('0 3 * * *', 'Europe/Berlin')).toBeUndefined();
  });

  it('refuses what is not cron, out of range, never due, or read in a zone that does not exist', () => {
    expect(scheduleError('every night')).toMatch(/exactly five, six, or seven space separated parts.*expected cron syntax: five fields/);
    expect(scheduleError('61 * * * *')).toMatch(/minute: 61/);
    // Seven fields (a year) are not cron as operators write it.
    expect(scheduleError('0 0 3 * * * 2030')).toBeDefined();
    expect(scheduleError('0 0 31 2 *')).toMatch(/never comes/);
    expect(scheduleError('0 3 * * *', 'Nowhere/Atlantis')).toBeDefined();
  });

  it('names the key and the fix when the file has a bad schedule', async () => {
    const msg = await loadError('sync:\n  - name: nightly\n    schedule: "61 3 * * *"\n    watch: example.com/*\n');
    expect(msg).toMatch(/^invalid setting sync\[0\]\.schedule from config file .*gomodproxy\.yaml: .*minute: 61.*expected cron syntax/);
  });
});

describe('sync jobs', () => {
  it('reads a job with its defaults: latest versions, no deps; watch as a list or a comma-separated string', async () => {
    const c = await load(
      [
        'sync:',
        '  - name: nightly',
        '    schedule: "0 3 * * *"',
        '    watch: "example.com/team/*,github.com/acme/tool"',
        '  - name: all-of-acme',
        '    schedule: "*/10 * * * *"',
        '    timezone: UTC',
        '    watch: [github.com/acme/*]',
        '    versions: { newest: 3 }',
        '    prefetch: lists/modules.txt',
        '    deps: true',
        '',
      ].join('\n'),
    );
    expect(c.sync[0]).toEqual({
      name: 'nightly',
      schedule: '0 3 * * *',
      watch: ['example.com/team/*', 'github.com/acme/tool'],
      versions: 'latest',
      deps: false,
    });
    expect(c.sync[1]).toMatchObject({ name: 'all-of-acme', timezone: 'UTC', watch: ['github.com/acme/*'], versions: { newest: 3 }, deps: true });
    // Relative to where the server starts, as the data folder.
    expect(path.isAbsolute(c.sync[1]!.prefetch!)).toBe(true);
    expect(c.sync[1]!.prefetch!.endsWith(path.join('lists', 'modules.txt'))).toBe(true);
    expect(c.jobs).toEqual({ concurrency: 8, history: 50 });
  });

  it('is settable from the environment as one YAML value', async () => {
    const c = await load('', { GOMODPROXY_SYNC: '[{name: hourly, schedule: "0 * * * *", watch: example.com/m, versions: all}]' });
    expect(c.sync).toEqual([{ name: 'hourly', schedule: '0 * * * *', watch: ['example.com/m'], versions: 'all', deps: false }]);
  });

  it('names each mistake with its key', async () => {
    const job = (extra: string): string => `sync:\n  - name: a\n    schedule: "0 3 * * *"\n${extra}`;
    expect(await loadError(job('    watch: example.com/*\n    timezone: Mars/Olympus\n'))).toMatch(/invalid setting sync\[0\]\.timezone .*not a time zone/);
    expect(await loadError(job(''))).toMatch(/invalid setting sync\[0\]\.watch .*nothing to do: give watch \(module patterns\), prefetch \(a file\), or both/);
    expect(await loadError(job('    watch: example.com/*\n    versions: newest\n'))).toMatch(
      /invalid setting sync\[0\]\.versions .*expected latest, all, or \{ newest: N \}/,
    );
    expect(await loadError(job('    watch: example.com/*\n    versions: { newest: 0 }\n'))).toMatch(/invalid setting sync\[0\]\.versions\.newest/);
    expect(await loadError(job('    watch: ["!example.com/x"]\n'))).toMatch(/invalid setting sync\[0\]\.watch\[0\] .*without spaces or "!" exclusions/);
    expect(await loadError(job('    watch: example.com/*\n  - name: a\n    schedule: "0 4 * * *"\n    watch: example.org/*\n'))).toMatch(
      /invalid setting sync\[1\]\.name .*a is also the name of sync\[0\]/,
    );
    expect(await loadError('sync:\n  - name: "bad name"\n    schedule: "0 3 * * *"\n    watch: example.com/*\n')).toMatch(/invalid setting sync\[0\]\.name/);
    expect(await loadError(job('    watch: example.com/*\n    every: 1h\n'))).toMatch(
      /^unknown setting sync\[0\]\.every in config file .*; known settings under sync\[0\]: name, schedule, timezone, watch, versions, prefetch, deps/,
    );
  });

  it('offline, the jobs are not run, and the start says so', async () => {
    const c = await load('upstream: "off"\nsync:\n  - name: nightly\n    schedule: "0 3 * * *"\n    watch: example.com/*\n');
    expect(c.offline).toBe(true);
    expect(c.warnings).toContainEqual(expect.stringMatching(/^sync \(nightly\) is not run: gomodproxy is offline and sync jobs need an upstream/));
  });
});
