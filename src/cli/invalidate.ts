// `gomodproxy invalidate <pattern>[@version]`: drops the mutable answers (list, @latest, queries)
// of the matching modules on every instance at once, so a new tag is seen now rather than after
// cache.ttl. With Redis configured, it publishes the invalidation there itself; otherwise (or
// with --url) it asks a running server's admin API, which needs an admin credential (--token).
import { request } from 'undici';
import { loadConfig, parseListen, type Config } from '../config/index.js';
import { errorMessage } from '../errors.js';
import { parseInvalidation } from '../server/invalidation.js';

export interface InvalidateOptions {
  file?: string;
  url?: string;
  token?: string;
  env?: NodeJS.ProcessEnv;
}

/** Resolves with the exit status: 0 done, 1 refused or failed, 2 a bad target. */
export async function runInvalidate(target: string, opts: InvalidateOptions): Promise<number> {
  let what;
  try {
    what = parseInvalidation(target);
  } catch (err) {
    process.stderr.write(`gomodproxy invalidate: ${errorMessage(err)}\n`);
    return 2;
  }
  const config = loadConfig({ file: opts.file, env: opts.env });
  const shown = what.version ? `${what.pattern}@${what.version}` : what.pattern;
  try {
    if (opts.url === undefined && config.redis) {
      const { invalidateThroughRedis } = await import('./invalidate-redis.js');
      const { stored } = await invalidateThroughRedis(config, what);
      process.stdout.write(`invalidated ${shown} on every instance (through Redis): ${stored} stored answers dropped\n`);
      return 0;
    }
    const base = (opts.url ?? serverUrl(config)).replace(/\/+$/, '');
    const token = opts.token ?? opts.env?.GOMODPROXY_TOKEN ?? process.env.GOMODPROXY_TOKEN;
    const res = await request(`${base}/-/api/invalidate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(what),
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    });
    const text = await res.body.text();
    let body: { error?: string; storedAnswersDropped?: number } = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      // Not our server, or not our API: the status says enough.
    }
    if (res.statusCode !== 200) {
      process.stderr.write(`gomodproxy invalidate: ${base} refused (${res.statusCode}): ${body.error ?? text.trim().slice(0, 300)}\n`);
      return 1;
    }
    process.stdout.write(`invalidated ${shown} on ${base}: ${body.storedAnswersDropped ?? 0} stored answers dropped\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`gomodproxy invalidate: ${errorMessage(err)}\n`);
    return 1;
  }
}

/** The server this config describes, as seen from this host. */
function serverUrl(config: Config): string {
  const l = parseListen(config.listen) ?? { host: '127.0.0.1', port: 3000 };
  const host = l.host === '' || l.host === '0.0.0.0' ? '127.0.0.1' : l.host === '::' ? '[::1]' : l.host.includes(':') ? `[${l.host}]` : l.host;
  return `${config.tls ? 'https' : 'http'}://${host}:${l.port}${config.pathPrefix}`;
}
