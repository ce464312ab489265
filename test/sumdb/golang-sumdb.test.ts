// Genuine data from the Go project's checksum database, verified with its published key.
//
// testdata/sum.golang.org/ is a copy of what the go command stored (under
// $GOMODCACHE/cache/download/sumdb/sum.golang.org/) when it verified golang.org/x/mod@v0.43.0 against
// the real database while this project's test/gotools module was set up: the lookup answer for that
// module (record 71056177, signed tree 72097574) and the six tiles it authenticated. The go command
// only caches tiles after authenticating them, so these are the tiles of that signed tree.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { GO_SUMDB_KEY, NoteError, SumdbClient, SumdbError, newVerifier, openNote, parseRecord, parseTree } from '../../src/sumdb/index.js';
import type { SumdbOps } from '../../src/sumdb/index.js';

const testdata = path.join(path.dirname(fileURLToPath(import.meta.url)), 'testdata');
const key = newVerifier(GO_SUMDB_KEY);

// A second, independent note: a sum.golang.org tree head used as a benchmark input in
// transparency-dev/trillian-tessera, internal/parse/parse_test.go (BenchmarkCheckpointUnsafe); the
// final newline, dropped there, is part of the signed format.
const TESSERA_NOTE =
  'go.sum database tree\n31700353\nqINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=\n\n' +
  '— sum.golang.org Az3grnmrIUEDFqHzAElIQCPNoRFRAAdFo47fooyWKMHb89k11GJh5zHIfNCOBmwn/C3YI8oW9/C8DJ87F61QqspBYwM=\n';

/** Ops that serve only the copied cache: any attempt to reach the network fails the test. */
class TestdataOps implements SumdbOps {
  remote: string[] = [];
  override: Map<string, Buffer> = new Map();
  written: string[] = [];
  logs: string[] = [];
  /** Serve the copied tiles as if they came from the database. */
  tilesOnline = false;
  async readRemote(p: string): Promise<Buffer> {
    this.remote.push(p);
    if (this.tilesOnline && p.startsWith('/tile/')) return readFile(path.join(testdata, 'sum.golang.org', p));
    throw Object.assign(new Error('offline'), { status: 404 });
  }
  async readConfig(): Promise<Buffer> {
    return Buffer.alloc(0);
  }
  async writeConfig(): Promise<boolean> {
    return true;
  }
  async readCache(file: string): Promise<Buffer | null> {
    const o = this.override.get(file);
    if (o) return o;
    return readFile(path.join(testdata, file)).catch(() => null);
  }
  async writeCache(file: string): Promise<void> {
    this.written.push(file);
  }
  log(msg: string): void {
    this.logs.push(msg);
  }
  securityError(): void {}
}

describe('sum.golang.org', () => {
  it('signed the tree head the go command stored', async () => {
    const lookup = await readFile(path.join(testdata, 'sum.golang.org/lookup/golang.org/x/mod@v0.43.0'));
    const { id, rest } = parseRecord(lookup);
    expect(id).toBe(71056177);
    const note = openNote(rest, [key]);
    expect(note.sigs).toEqual([{ name: 'sum.golang.org', hash: 0x033de0ae, base64: expect.stringMatching(/^Az3gr/) as string }]);
    const tree = parseTree(note.text);
    expect(tree.n).toBe(72097574);
    expect(tree.hash.toString('base64')).toBe('TN5X3MLGTDFnVRn7RF0+aSqn9MdPDdly11pPObF1Ti8=');
  });

  it('signed the tree head published in trillian-tessera', () => {
    const note = openNote(Buffer.from(TESSERA_NOTE), [key]);
    expect(parseTree(note.text).n).toBe(31700353);
    const forged = Buffer.from(TESSERA_NOTE.replace('31700353', '31700354'));
    expect(() => openNote(forged, [key])).toThrow(NoteError);
    expect(() => openNote(forged, [key])).toThrow(/invalid signature for key sum\.golang\.org\+033de0ae/);
  });

  it('proves golang.org/x/mod@v0.43.0 is in the log, offline, from the genuine tiles', async () => {
    const ops = new TestdataOps();
    const client = new SumdbClient({ verifierKey: GO_SUMDB_KEY, ops });
    const lines = await client.lookup('golang.org/x/mod', 'v0.43.0');
    expect(lines).toEqual([
      'golang.org/x/mod v0.43.0 h1:MFuq5J6s35W9D3IjkwyWc9vHh0nENOrt5K8Iof4ofmg=',
      'golang.org/x/mod v0.43.0/go.mod h1:4ec1JnuyBz5+FIVhg86UsA39YG8BpnrZdJYSNHmGzHY=',
    ]);
    expect(ops.remote).toEqual([]);
    expect((await client.latestTree()).tree.n).toBe(72097574);
  });

  it('rejects one flipped bit in a genuine tile', async () => {
    const file = 'sum.golang.org/tile/8/0/x277/563';
    const tile = Buffer.from(await readFile(path.join(testdata, file)));
    tile[4000]! ^= 1;
    const ops = new TestdataOps();
    ops.override.set(file, tile);
    const client = new SumdbClient({ verifierKey: GO_SUMDB_KEY, ops });
    const err = await client.lookup('golang.org/x/mod', 'v0.43.0').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SumdbError);
    expect(ops.logs.join('\n')).toContain('downloaded inconsistent tile');
  });

  it('recovers from a damaged cached tile by fetching it again', async () => {
    const file = 'sum.golang.org/tile/8/1/x001/084';
    const tile = Buffer.from(await readFile(path.join(testdata, file)));
    tile[100]! ^= 1;
    const ops = new TestdataOps();
    ops.override.set(file, tile);
    ops.tilesOnline = true;
    const client = new SumdbClient({ verifierKey: GO_SUMDB_KEY, ops });
    expect(await client.lookup('golang.org/x/mod', 'v0.43.0')).toHaveLength(2);
    expect(ops.remote).toContain('/tile/8/1/x001/084');
    // The good tile replaces the damaged one in the cache.
    expect(ops.written).toContain(file);
  });
});
