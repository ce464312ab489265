// The single source of truth for every setting: YAML keys, GOMODPROXY_* variables and
// their defaults all come from this schema (load.ts walks it to name the variables).
import { z } from 'zod';
import { parseDuration, parseSize } from './units.js';

const durationIn = z.union([z.string(), z.number()]);
const duration = durationIn.transform((v, ctx) => {
  try {
    return parseDuration(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});
const size = z.union([z.string(), z.number()]).transform((v, ctx) => {
  try {
    return parseSize(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

const hostPort = z.string().refine((v) => parseListen(v) !== null, {
  message: 'expected host:port such as 0.0.0.0:3000, 127.0.0.1:8080 or [::]:3000',
});

export const balanceSchema = z.enum(['failover', 'round-robin']);

const timeoutsShape = {
  /** TCP (and TLS) connect. */
  connect: duration.default(10_000),
  /** From sending the request to the response headers. */
  firstByte: duration.default(60_000),
  /** Longest silence while a body streams. */
  idle: duration.default(60_000),
};
const timeoutsSchema = z.strictObject(timeoutsShape);

export const upstreamSchema = z.strictObject({
  /** https://host[/path], http://..., file:///abs/path, direct or off. */
  url: z.string().min(1),
  /** Lower numbers are tried first; upstreams of one priority are replicas of each other. */
  priority: z.number().int().default(0),
  /** How replicas of one priority share requests; defaults to the top-level `balance`. */
  balance: balanceSchema.optional(),
  /** After this priority fails: try the next one on "not found" only (GOPROXY ','), or on any error ('|'). */
  fallthrough: z.enum(['not-found', 'any']).default('not-found'),
  username: z.string().optional(),
  password: z.string().optional(),
  token: z.string().optional(),
  timeouts: z
    .strictObject({ connect: duration.optional(), firstByte: duration.optional(), idle: duration.optional() })
    .optional(),
});

export const configSchema = z.strictObject({
  /** Address to serve on. */
  listen: hostPort.default('0.0.0.0:3000'),
  /** Data folder: the disk cache (itself a valid file:// GOPROXY) and the server's state. */
  data: z.string().min(1).default('./data'),
  /** Serve under a path prefix, e.g. /go, when mounted behind a reverse proxy. */
  pathPrefix: z
    .string()
    .default('')
    .refine((v) => v === '' || /^\/[A-Za-z0-9._~\-/]*$/.test(v), {
      message: 'expected a path such as /go (letters, digits, ".", "_", "~", "-" and "/")',
    })
    .transform((v) => v.replace(/\/+$/, '')),
  /** Worker processes sharing the port; default one per core. */
  workers: z.number().int().min(1).max(512).optional(),
  /** Upstream list in GOPROXY syntax, e.g. "https://proxy.golang.org,direct". */
  upstream: z.string().optional(),
  /** Structured upstreams (priorities, balancing, credentials, timeouts); replaces `upstream`. */
  upstreams: z.array(upstreamSchema).min(1).optional(),
  /** Checksum database, GOSUMDB syntax: off, sum.golang.org, or "<name>+<hash>+<key> [url]". Default: $GOSUMDB, else sum.golang.org. */
  sumdb: z.string().optional(),
  /** Modules never checked against (or sent to) the checksum database, GONOSUMDB glob syntax. Default: $GONOSUMDB, else $GOPRIVATE. */
  noSumdb: z.string().optional(),
  /** Default balancing among upstreams of the same priority. */
  balance: balanceSchema.default('failover'),
  /** Default upstream timeouts. */
  timeouts: timeoutsSchema.prefault({}),
  health: z
    .strictObject({
      /** Consecutive failures after which an upstream is skipped... */
      failures: z.number().int().min(1).default(3),
      /** ...for this long, then probed again with one request. */
      cooldown: duration.default(30_000),
    })
    .prefault({}),
  cache: z
    .strictObject({
      /** How long a list, @latest or query answer is fresh. */
      ttl: duration.default(60_000),
      /** After ttl, serve the old answer at once and refresh in the background for this long. */
      staleWhileRevalidate: duration.default(300_000),
      /** When every upstream fails, serve an answer up to this old (marked stale). */
      maxStale: duration.default(30 * 86_400_000),
      /** Cache-Control max-age for immutable artifacts. */
      immutableMaxAge: duration.default(365 * 86_400_000),
      memory: z
        .strictObject({
          /** Bound of the in-memory cache of small blobs, per process. */
          maxBytes: size.default(256 * 2 ** 20),
          /** Blobs larger than this are always streamed from the store. */
          maxItemBytes: size.default(2 * 2 ** 20),
        })
        .prefault({}),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      /** One JSON line per request. */
      access: z.boolean().default(true),
    })
    .prefault({}),
  /** Identifies this deployment in loop-detection headers; default: generated once and kept in the data folder. */
  instanceId: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/, 'expected 1-64 letters, digits, ".", "_" or "-"')
    .optional(),
  /** How long SIGTERM waits for in-flight responses. */
  shutdownTimeout: duration.default(30_000),
});

export type ConfigInput = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;
export type UpstreamInput = z.output<typeof upstreamSchema>;
export type Timeouts = z.output<typeof timeoutsSchema>;
export type Balance = z.output<typeof balanceSchema>;

export function parseListen(v: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(v.trim());
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  return { host: m[1] ?? m[2] ?? '', port };
}
