// The Redis half of `gomodproxy invalidate`: loaded only when redis is configured, so the
// command does not load ioredis otherwise.
import pino from 'pino';
import { HostCoordination, type Invalidation } from '../cluster/coordination.js';
import { createRedisCoordination } from '../cluster/redis.js';
import type { Config } from '../config/index.js';
import { ProxyError } from '../errors.js';
import { Invalidations } from '../server/invalidation.js';

export async function invalidateThroughRedis(config: Config, what: Invalidation): Promise<{ stored: number }> {
  if (!config.redis) throw new Error('redis is not configured');
  const log = pino({ level: 'warn' }, pino.destination(2));
  const redis = createRedisCoordination(config.redis, { fallback: new HostCoordination(config.data), log, answerTtlMs: config.cache.maxStale });
  try {
    if (!(await redis.ready())) {
      throw new ProxyError('unavailable', `${redis.degraded() ?? `redis at ${redis.description} is unreachable`}; nothing was invalidated`);
    }
    const answers = redis.mutable;
    if (!answers) throw new Error('the Redis coordination keeps no answers');
    return await new Invalidations({ coordination: redis, answers, memories: [], remembered: redis.answers, log }).invalidate(what);
  } finally {
    await redis.close();
  }
}
