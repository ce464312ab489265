// `gomodproxy gc`: one garbage collection of the store a server uses (its config: limits, pins,
// routes, offline mode), safe beside running servers: they share the store's gc lock, the fetch
// locks it respects and the served records it reads. Prints what it freed (or would, with
// --dry-run) and what it kept and why; --json prints the report instead.
import { existsSync } from 'node:fs';
import pino from 'pino';
import { createBlobStore } from '../cache/create.js';
import { GC_LOCK_KEY, GcBusyError, type GcReport, type GcRunOptions } from '../catalog/index.js';
import { loadConfig, type LoadOptions } from '../config/index.js';
import { createCoordination, createGarbageCollector } from '../server/index.js';
import { Metrics } from '../server/metrics.js';
import { formatBytes } from '../server/space.js';
import { createRouting } from '../server/wiring.js';

export interface GcCommandOptions extends LoadOptions {
  dryRun?: boolean;
  json?: boolean;
  /** Overrides gc.maxBytes. */
  maxBytes?: number;
  /** Overrides gc.maxAge (ms). */
  maxAgeMs?: number;
  /** How long to wait for another collection to finish before giving up (ms). */
  waitMs?: number;
}

/** Resolves with the exit code: 0 done (whatever it freed), 1 a failure, 2 an unusable setting or folder. */
export async function runGc(opts: GcCommandOptions): Promise<number> {
  const config = loadConfig(opts);
  const err = process.stderr;
  if (config.store.type === 'fs' && !existsSync(config.data)) {
    err.write(`gomodproxy gc: data folder ${config.data} does not exist; give the one serve uses with --data (or GOMODPROXY_DATA)\n`);
    return 2;
  }
  const log = pino({ level: 'silent' });
  const store = await createBlobStore(config);
  const coordination = await createCoordination(config, log);
  const routing = createRouting(config, {
    store,
    coordination,
    metrics: new Metrics(),
    log,
    via: 'gomodproxy-gc',
    offline: config.offline,
    sourcesOff: config.offline,
  });
  const { gc } = createGarbageCollector(config, { store, coordination, routes: routing.routes, log });
  const run: GcRunOptions = { dryRun: opts.dryRun ?? false, trigger: 'cli' };
  if (opts.maxBytes !== undefined) run.maxBytes = opts.maxBytes;
  if (opts.maxAgeMs !== undefined) run.maxAgeMs = opts.maxAgeMs;
  try {
    const deadline = Date.now() + (opts.waitMs ?? 300_000);
    let report: GcReport | null = null;
    for (let said = false; report === null;) {
      try {
        report = await gc.run(run);
      } catch (e) {
        if (!(e instanceof GcBusyError) || Date.now() > deadline) throw e;
        if (!said) err.write('gomodproxy gc: another garbage collection is running on this store; waiting for it to finish\n');
        said = true;
        await coordination.released(GC_LOCK_KEY, Math.max(0, Math.min(5_000, deadline - Date.now())));
      }
    }
    if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
    else printReport(report, process.stdout);
    for (const e of report.errors) err.write(`gomodproxy gc: ${e}\n`);
    return report.errors.length > 0 ? 1 : 0;
  } catch (e) {
    err.write(`gomodproxy gc: ${(e as Error).message}\n`);
    return 1;
  } finally {
    await routing.close().catch(() => undefined);
    await coordination.close().catch(() => undefined);
    await store.close?.().catch(() => undefined);
  }
}

function limitText(r: GcReport): string {
  const parts = [r.limits.maxBytes === null ? 'no size limit' : `limit ${formatBytes(r.limits.maxBytes)}`];
  parts.push(r.limits.maxAgeMs === null ? 'no age limit' : `max age ${formatAge(r.limits.maxAgeMs)}`);
  return parts.join(', ');
}

function formatAge(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${Math.round(ms / 1000)}s`;
}

export function printReport(r: GcReport, out: NodeJS.WritableStream): void {
  const would = r.dryRun ? 'would ' : '';
  out.write(
    `module data in ${r.store}: ${formatBytes(r.before.bytes)} in ${r.before.versions} versions of ${r.before.modules} modules (${r.before.zips} zips); ${limitText(r)}\n`,
  );
  const byVersion = new Map<string, { kinds: string[]; why: 'age' | 'size'; last: number }>();
  for (const e of r.removed) {
    const id = `${e.module}@${e.version}`;
    const v = byVersion.get(id) ?? { kinds: [], why: e.why, last: e.lastServedMs };
    v.kinds.push(e.kind === 'zip' ? 'zip' : `.${e.kind}`);
    byVersion.set(id, v);
  }
  for (const [id, v] of byVersion) {
    const when = `${v.why === 'age' ? 'not served since' : 'least recently served, last'} ${new Date(v.last).toISOString()}`;
    out.write(`${would}evict ${id}: ${v.kinds.join(', ')} (${when})\n`);
  }
  if (r.removedTotal > r.removed.length) out.write(`... and ${r.removedTotal - r.removed.length} more files\n`);
  if (r.nothingEvictable) out.write(`nothing evicted: ${r.nothingEvictable}\n`);
  const counts = (['zip', 'mod', 'info', 'ziphash', 'origin'] as const)
    .filter((k) => r.evicted[k] > 0)
    .map((k) => `${r.evicted[k]} ${k === 'zip' ? 'zips' : `.${k}`}`);
  out.write(
    `${r.dryRun ? 'would free' : 'freed'} ${formatBytes(r.freedBytes)}${counts.length ? ` (${counts.join(', ')})` : ''}: ${r.versions.zipOnly} versions without their zip, ${r.versions.whole} removed entirely; module data ${r.dryRun ? 'would be' : 'now'} ${formatBytes(r.after.bytes)}${r.limits.maxBytes === null ? '' : r.after.underLimit ? ' (under the limit)' : ' (OVER the limit)'}\n`,
  );
  const kept = Object.entries(r.kept).filter(([, g]) => g.versions > 0);
  if (kept.length > 0) {
    out.write(`kept: ${kept.map(([why, g]) => `${g.versions} ${why} (${formatBytes(g.bytes)})`).join(', ')}\n`);
    for (const [, g] of kept) for (const ex of g.examples) out.write(`  kept ${ex}\n`);
  }
  for (const n of r.notes) out.write(`note: ${n}\n`);
  if (!r.dryRun) {
    const left = r.leftovers ? `${r.leftovers.files} leftovers of interrupted writes (${formatBytes(r.leftovers.bytes)})` : 'no leftovers looked for';
    out.write(`removed ${left}, ${r.emptyFolders} empty folders; folded ${r.servedRecordsFolded} served records\n`);
  }
}
