// The coordination a process uses: this host's lock files, or Redis across hosts when configured.
import type { Logger } from 'pino';
import type { Config } from '../config/index.js';
import { HostCoordination, type Coordination } from './coordination.js';

export async function createCoordination(config: Config, log: Logger, host = new HostCoordination(config.data)): Promise<Coordination> {
  // The Redis client (tens of MB in every process) is loaded only where Redis is configured.
  if (!config.redis) return host;
  const { createRedisCoordination } = await import('./redis.js');
  return createRedisCoordination(config.redis, { fallback: host, log, answerTtlMs: config.cache.maxStale });
}
