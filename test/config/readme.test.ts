// The README is the user's entry point: its settings table must name every setting there is,
// and CI must run the very test command it gives.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { schemaLeaves } from '../../src/config/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe('README', () => {
  it('documents every setting by its key and environment variable', async () => {
    const readme = await readFile(path.join(root, 'README.md'), 'utf8');
    const missing = schemaLeaves()
      .filter((l) => !readme.includes(`\`${l.env}\``) || !readme.includes(`\`${l.path.join('.')}\``))
      .map((l) => `${l.path.join('.')} (${l.env})`);
    expect(missing).toEqual([]);
  });

  it('gives the commands CI and a new user run', async () => {
    const readme = await readFile(path.join(root, 'README.md'), 'utf8');
    const ci = await readFile(path.join(root, '.ci/run'), 'utf8');
    const pkg = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string>; bin: Record<string, string> };
    expect(readme).toContain('npm ci && npm start');
    expect(readme).toContain('npm run test:ci');
    expect(ci).toContain('npm run test:ci');
    expect(pkg.scripts['test:ci']).toBeDefined();
    expect(pkg.scripts.prepare).toContain('tsc');
    expect(pkg.bin.gomodproxy).toBe('dist/cli/main.js');
  });
});
