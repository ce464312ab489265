// `gomodproxy vulndb`: mirrors the vulnerability database into the data folder now, as a running
// server's refresh would (same checks, same lock), e.g. on a connected machine before the data
// folder is carried to an offline one. Prints the refresh report as JSON on standard output.
import pino from 'pino';
import { createBlobStore } from '../cache/create.js';
import { HostCoordination } from '../cluster/coordination.js';
import { loadConfig, type LoadOptions } from '../config/index.js';
import { VulnMirror } from '../vulndb/index.js';

/** Resolves with the exit code: 0 updated or current, 1 the refresh failed or could not run. */
export async function runVulndbSync(opts: LoadOptions): Promise<number> {
  const config = loadConfig(opts);
  if (config.offline) {
    process.stderr.write('gomodproxy vulndb: offline (upstream off or offline: true); the vulnerability database is never fetched offline\n');
    return 1;
  }
  const store = await createBlobStore(config);
  const coordination = new HostCoordination(config.data);
  const mirror = new VulnMirror({
    store,
    coordination,
    log: pino({ level: 'silent' }),
    url: config.vulndb.url,
    ttlMs: config.vulndb.ttl,
    offline: false,
    concurrency: config.vulndb.concurrency,
    timeouts: config.timeouts,
    eager: false,
  });
  try {
    const r = await mirror.refreshVulndb();
    process.stdout.write(`${JSON.stringify(r)}\n`);
    if (r.status === 'failed' || r.status === 'skipped') {
      process.stderr.write(`gomodproxy vulndb: ${r.reason ?? r.status}\n`);
      return 1;
    }
    process.stderr.write(`the vulnerability database of ${r.source} (modified ${r.modified ?? '?'}, ${r.entries} entries) is in ${config.data}/vulndb\n`);
    return 0;
  } finally {
    mirror.close();
    await coordination.close();
    await store.close?.();
  }
}
