import { chmod, readdir, readFile, writeFile, mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FsBlobStore } from '../../src/cache/fs.js';
import { artifactKey, localListKey, mutableListKey } from '../../src/cache/keys.js';
import { ProxyError } from '../../src/errors.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { blobStoreCompliance } from './compliance.js';

// The suite writes tens of MiB per store: removed afterwards, not left in the temp folder.
afterAll(cleanupAll);

async function newStore(): Promise<FsBlobStore> {
  return new FsBlobStore(await makeTempDir('fs'));
}

blobStoreCompliance('fs', newStore);

describe('FsBlobStore layout', () => {
  it("keeps the go command's download-cache layout, so the folder is a file:// GOPROXY", async () => {
    const s = await newStore();
    await s.put(artifactKey('github.com/!azure/go', 'v1.0.0-!r!c1', 'zip'), Buffer.from('z'));
    await s.put(localListKey('github.com/!azure/go'), Buffer.from('v1.0.0-RC1\n'));
    expect(await readFile(path.join(s.root, 'github.com/!azure/go/@v/v1.0.0-!r!c1.zip'), 'utf8')).toBe('z');
    expect(await readFile(path.join(s.root, 'github.com/!azure/go/@v/list'), 'utf8')).toBe('v1.0.0-RC1\n');
  });

  it('keeps mutable answers out of the module tree (a name without a dot is never a module path)', () => {
    expect(mutableListKey('github.com/a/b')).toBe('mutable/github.com/a/b/@v/list');
  });

  it('leaves no temporary file behind when a write fails', async () => {
    if (process.getuid?.() === 0) {
      // root ignores permissions; simulate a failure with a directory where the file should go.
      const s = await newStore();
      await mkdir(path.join(s.root, 'example.com/m/@v/v1.0.0.info'), { recursive: true });
      await expect(s.put('example.com/m/@v/v1.0.0.info', Buffer.from('{}'))).rejects.toBeInstanceOf(ProxyError);
      expect((await readdir(path.join(s.root, 'example.com/m/@v'))).filter((n) => n.includes('.tmp-'))).toEqual([]);
      return;
    }
    const s = await newStore();
    await mkdir(path.join(s.root, 'example.com/m/@v'), { recursive: true });
    await chmod(path.join(s.root, 'example.com/m/@v'), 0o500);
    await expect(s.put('example.com/m/@v/v1.0.0.info', Buffer.from('{}'))).rejects.toBeInstanceOf(ProxyError);
  });

  it('reports storage trouble as a 503 line for the go user', async () => {
    const s = await newStore();
    await writeFile(path.join(s.root, 'example.com'), 'a file where a folder should be');
    const err = await s.put('example.com/m/@v/v1.0.0.info', Buffer.from('{}')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProxyError);
    expect((err as ProxyError).status).toBe(503);
    expect((err as ProxyError).message).not.toContain('\n');
  });
});

describe('FsBlobStore folders (for garbage collection)', () => {
  it('lists the folders directly under a prefix', async () => {
    const s = await newStore();
    await s.put('example.com/a/@v/v1.0.0.info', Buffer.from('{}'));
    await s.put('golang.org/x/text/@v/list', Buffer.from(''));
    await s.put('state/instance-id', Buffer.from('x'));
    const tops: string[] = [];
    for await (const f of s.listFolders('')) tops.push(f);
    expect(tops.sort()).toEqual(['example.com', 'golang.org', 'state']);
    const under: string[] = [];
    for await (const f of s.listFolders('golang.org/x')) under.push(f);
    expect(under).toEqual(['text']);
    for await (const f of s.listFolders('nothing.example')) throw new Error(`listed ${f}`);
  });

  it('removes empty folders deepest first, never one holding a file, and writes into a removed folder again', async () => {
    const s = await newStore();
    await s.put('example.com/keep/@v/v1.0.0.info', Buffer.from('{}'));
    await s.put('example.com/gone/@v/v1.0.0.info', Buffer.from('{}'));
    await s.delete('example.com/gone/@v/v1.0.0.info');
    await mkdir(path.join(s.root, 'example.com/empty/a/b'), { recursive: true });
    expect(await s.removeEmptyFolders('example.com')).toBe(5);
    expect((await readdir(path.join(s.root, 'example.com'))).sort()).toEqual(['keep']);
    await s.delete('example.com/keep/@v/v1.0.0.info');
    expect(await s.removeEmptyFolders('example.com')).toBe(3);
    await expect(stat(path.join(s.root, 'example.com'))).rejects.toMatchObject({ code: 'ENOENT' });
    // This process made that folder before: it must make it again, not trust that it exists.
    await s.put('example.com/keep/@v/v1.0.0.info', Buffer.from('{"again":1}'));
    const w = await s.beginWrite('example.com/gone/@v/v1.0.0.zip');
    await w.append(Buffer.from('zip'));
    await w.commit();
    expect(await readFile(path.join(s.root, 'example.com/gone/@v/v1.0.0.zip'), 'utf8')).toBe('zip');
    await expect(s.removeEmptyFolders('')).rejects.toThrow(/root of the store is never removed/);
  });
});
