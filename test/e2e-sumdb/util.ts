// Shared pieces of the checksum-database end-to-end tests (not a test file itself).
import { access } from 'node:fs/promises';
import path from 'node:path';
import { get } from '../helpers/http.js';
import { cliEntry } from '../helpers/gomodproxy.js';
import { run, scrubbedEnv, type RunResult } from '../helpers/proc.js';
import type { World } from '../helpers/world.js';
import type { GoSumdbServer } from '../sumdb/helpers.js';

/** `path` with each upper-case letter as `!` + lower case (the proxy and cache layout). */
export function esc(p: string): string {
  return p.replace(/[A-Z]/g, (c) => `!${c.toLowerCase()}`);
}

/** The two go.sum lines of a world's module version, as the go command computed them directly. */
export function goSumLines(world: World, pathAtVersion: string): string[] {
  const e = world.get(pathAtVersion);
  return [`${e.Path} ${e.Version} ${e.Sum}`, `${e.Path} ${e.Version}/go.mod ${e.GoModSum}`];
}

/** Records the world's versions in the test database (their real hashes). */
export async function addToDb(db: GoSumdbServer, world: World, pathAtVersions: readonly string[]): Promise<void> {
  await db.add(pathAtVersions.flatMap((pv) => goSumLines(world, pv)));
}

/** The value of one Prometheus sample of a proxy (0 when absent), matched by name and label subset. */
export async function metric(proxyUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = (await get(`${proxyUrl}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map([...(m[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) total += Number(m[4]);
  }
  return total;
}

/** The database paths asked for so far that mention `needle`. */
export async function dbHits(db: GoSumdbServer, needle: string | RegExp): Promise<string[]> {
  const all = await db.requests();
  return all.filter((p) => (typeof needle === 'string' ? p.includes(needle) : needle.test(p)));
}

export async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

/** Where the proxy keeps a version's file in its data folder. */
export function cachedFile(dataDir: string, modPath: string, version: string, ext: 'info' | 'mod' | 'zip' | 'ziphash'): string {
  return path.join(dataDir, esc(modPath), '@v', `${esc(version)}.${ext}`);
}

/** Runs `gomodproxy <args>` (the built CLI) with a clean environment plus `env`. */
export function gomodproxy(args: readonly string[], env: Record<string, string> = {}, cwd?: string): Promise<RunResult> {
  return run(process.execPath, [cliEntry, ...args], {
    cwd: cwd ?? path.dirname(cliEntry),
    env: { ...scrubbedEnv(), GOSUMDB: 'off', ...env },
    timeoutMs: 60_000,
  });
}

/** A valid module zip for `modPath@version` holding `files` (a tampered stand-in for the real one). */
export async function moduleZip(modPath: string, version: string, files: Record<string, string>): Promise<Buffer> {
  const { ZipFile } = await import('yazl');
  const zip = new ZipFile();
  for (const [name, text] of Object.entries(files)) {
    zip.addBuffer(Buffer.from(text), `${modPath}@${version}/${name}`, { mtime: new Date(Date.UTC(2020, 0, 1)) });
  }
  zip.end();
  const chunks: Buffer[] = [];
  for await (const c of zip.outputStream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
