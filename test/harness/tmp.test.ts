// The teardown registry and read-only-tolerant removal that every other helper relies on.
import { chmod, mkdir, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { cleanupAll, makeTempDir, registerCleanup, removeTree } from '../helpers/tmp.js';

afterAll(cleanupAll);

test('makeTempDir makes fresh dirs under os.tmpdir(); cleanupAll removes them, read-only trees included', async () => {
  const a = await makeTempDir('a/b c');
  const b = await makeTempDir('a/b c');
  expect(a).not.toBe(b);
  expect(path.dirname(a)).toBe(os.tmpdir());
  expect(path.basename(a)).toMatch(/^gmp-a_b_c-/);

  // what a module cache written without -modcacherw looks like: 0444 files in 0555 dirs
  const deep = path.join(a, 'pkg', 'mod', 'example.com', 'm@v1.0.0');
  await mkdir(deep, { recursive: true });
  await writeFile(path.join(deep, 'go.mod'), 'module example.com/m\n');
  await chmod(path.join(deep, 'go.mod'), 0o444);
  for (const d of [deep, path.dirname(deep), path.join(a, 'pkg', 'mod')]) await chmod(d, 0o555);

  const order: string[] = [];
  registerCleanup(() => order.push('first'));
  registerCleanup(() => {
    order.push('failing');
    throw new Error('teardown failed');
  });
  registerCleanup(async () => order.push('last'));

  await expect(cleanupAll()).rejects.toThrow('teardown failed');
  // newest first, and a failing step does not stop the rest
  expect(order).toEqual(['last', 'failing', 'first']);
  await expect(stat(a)).rejects.toThrow(/ENOENT/);
  await expect(stat(b)).rejects.toThrow(/ENOENT/);
  // the list is empty now
  await cleanupAll();
});

test('removeTree tolerates missing paths', async () => {
  await removeTree(path.join(os.tmpdir(), 'gmp-does-not-exist-xyz'));
});
