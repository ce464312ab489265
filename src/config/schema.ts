// The single source of truth for every setting: YAML keys, GOMODPROXY_* variables and
// their defaults all come from this schema (load.ts walks it to name the variables).
import { Cron } from 'croner';
import { z } from 'zod';
import { patternAtVersionProblem } from '../module/index.js';
import { parseTrustedProxy } from './net.js';
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
  timeouts: z.strictObject({ connect: duration.optional(), firstByte: duration.optional(), idle: duration.optional() }).optional(),
});

// ---- auth: who is asking and what they may do (src/access reads this block) ----

/** One authorization rule: anonymous | authenticated | user:<name> | group:<name> | scope:<name>. */
export const authRuleSchema = z.string().regex(/^(anonymous|authenticated|(user|group|scope):\S.*)$/, {
  message: 'expected anonymous, authenticated, user:<name>, group:<name> or scope:<name>',
});

const ldapSchema = z
  .strictObject({
    /** ldap://host:389 or ldaps://host:636. */
    url: z.string().regex(/^ldaps?:\/\/[^/]+\/?$/, 'expected ldap://host[:port] or ldaps://host[:port]'),
    /** Upgrade ldap:// with StartTLS before any password is sent. */
    startTls: z.boolean().default(false),
    /** PEM file of the CA that signed the LDAP server's certificate (default: the system's). */
    caFile: z.string().optional(),
    /** Direct bind: the user's DN, {user} replaced (escaped), e.g. uid={user},ou=people,dc=example,dc=com. */
    userDn: z.string().includes('{user}', { message: 'must contain {user}' }).optional(),
    /** Search-then-bind: a service account finds the user's DN, then the user's password is checked by binding as it. */
    search: z
      .strictObject({
        baseDn: z.string().min(1),
        /** {user} is replaced (filter-escaped). */
        filter: z.string().includes('{user}', { message: 'must contain {user}' }).default('(uid={user})'),
        bindDn: z.string().min(1),
        bindPassword: z.string(),
      })
      .optional(),
    groups: z
      .strictObject({
        /** memberOf: read the user entry's memberOf attribute; search: find groups whose member is the user. */
        from: z.enum(['memberOf', 'search', 'none']).default('memberOf'),
        baseDn: z.string().optional(),
        /** {dn} and {user} are replaced (filter-escaped). */
        filter: z.string().default('(|(member={dn})(uniqueMember={dn})(memberUid={user}))'),
        /** Attribute that names a group (memberOf values use their first RDN's value). */
        nameAttribute: z.string().default('cn'),
      })
      .prefault({}),
    /** Connect and per-operation limit. */
    timeout: duration.default(5_000),
  })
  .refine((v) => (v.userDn === undefined) !== (v.search === undefined), {
    message: 'set exactly one of userDn (bind as uid={user},...) or search (find the user with a service account, then bind)',
  })
  .refine((v) => v.groups.from !== 'search' || v.groups.baseDn !== undefined, {
    message: 'groups.from: search needs groups.baseDn',
    path: ['groups', 'baseDn'],
  });

const oidcSchema = z.strictObject({
  /** Expected `iss`; also where the JWKS is discovered (/.well-known/openid-configuration) when jwksUrl is not set. */
  issuer: z.string().url(),
  jwksUrl: z.string().url().optional(),
  /** Expected `aud`: required, so tokens minted for other applications of the same issuer are refused. */
  audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
  /** Claim naming the user; default preferred_username, then sub. A dotted path reaches nested claims. */
  userClaim: z.string().optional(),
  /** Claim listing groups (array or space-separated string); dotted path allowed, e.g. realm_access.roles. */
  groupsClaim: z.string().default('groups'),
  /** Accepted signature algorithms (default: any asymmetric algorithm the key supports). */
  algorithms: z.array(z.string()).optional(),
  /** Allowed clock skew for exp/nbf/iat. */
  clockTolerance: duration.default(30_000),
  /** Least time between two JWKS fetches triggered by an unknown key id. */
  jwksCooldown: duration.default(30_000),
  /** How long a JWKS fetch may take. */
  timeout: duration.default(5_000),
});

const mtlsSchema = z.strictObject({
  /** Which part of a verified client certificate names the user. */
  userFrom: z.enum(['cn', 'email', 'uri', 'dns']).default('cn'),
  /** Groups per user name, e.g. { ci-bot: [ci, readers] }. */
  groups: z.record(z.string(), z.array(z.string())).default({}),
});

const authSchema = z.strictObject({
  /** The realm named in WWW-Authenticate. */
  realm: z
    .string()
    .regex(/^[^"\\\r\n]*$/, 'must not contain quotes, backslashes or newlines')
    .default('gomodproxy'),
  /** htpasswd file with bcrypt hashes only (htpasswd -B); reloaded when it changes. */
  htpasswd: z.string().optional(),
  ldap: ldapSchema.optional(),
  tokens: z
    .strictObject({
      /** API tokens from `gomodproxy token create`, kept hashed in <data>/state/tokens.json. */
      enabled: z.boolean().default(true),
    })
    .prefault({}),
  oidc: oidcSchema.optional(),
  mtls: mtlsSchema.optional(),
  cache: z
    .strictObject({
      /** How long a verified credential is trusted without checking again (bcrypt and LDAP are slow). */
      ttl: duration.default(60_000),
      /** How long a failed credential is refused without checking again. */
      failureTtl: duration.default(10_000),
      maxEntries: z.number().int().min(1).default(10_000),
    })
    .prefault({}),
  rateLimit: z
    .strictObject({
      /** Sustained requests per second per client (user, else address); 0 turns the limit off. */
      requestsPerSecond: z.number().min(0).default(0),
      /** Requests a client may make at once above the sustained rate; default 2 s worth. */
      burst: z.number().int().min(1).optional(),
    })
    .prefault({}),
  /** Upstream fetches one client may have running at once; 0 means no cap. */
  fetchConcurrencyPerClient: z.number().int().min(0).default(0),
  /** Who may read /metrics and use the admin API. */
  metrics: z.array(authRuleSchema).default(['anonymous']),
  admin: z.array(authRuleSchema).default(['authenticated']),
  /** Who may publish modules to routes marked publish: true (CI: a token made with --scope publish). */
  publish: z.array(authRuleSchema).default(['scope:publish']),
  audit: z
    .strictObject({
      enabled: z.boolean().default(false),
      /** Append JSON lines to this file (reopened on SIGHUP); unset: standard output. */
      file: z.string().optional(),
    })
    .prefault({}),
});

export type AuthConfig = z.output<typeof authSchema>;
export type LdapConfig = z.output<typeof ldapSchema>;
export type OidcConfig = z.output<typeof oidcSchema>;
export type MtlsConfig = z.output<typeof mtlsSchema>;

// ---- end of auth ----

// ---- routes and policy: which modules come from where, and who may read them ----

/** GOPRIVATE-style glob list (comma-separated string or list); an entry starting with "!" excludes. */
const patternList = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

export const routeSchema = z
  .strictObject({
    /** Module path patterns (GOPRIVATE globs; "!" excludes), e.g. "corp.example/*,!corp.example/oss/*". */
    match: patternList,
    /** Sources in GOPROXY syntax, e.g. "direct" or "https://goproxy.corp|direct"; default: the global upstreams. */
    sources: z.string().min(1).optional(),
    /** Direct from version control with credentials; never sent to a public upstream or the checksum database. */
    private: z.boolean().default(false),
    /** Check hashes against the checksum database; default: not for private routes. */
    sumdb: z.boolean().optional(),
    /** Freshness of list/@latest/query answers for these modules; default cache.ttl. */
    ttl: duration.optional(),
    /** Who may read these modules; default: the top-level `read`. */
    read: z.array(authRuleSchema).min(1).optional(),
    /** Answer for a reader who may not: not-found hides the module (default for private routes), forbidden says why. */
    deniedAs: z.enum(['not-found', 'forbidden']).optional(),
    /**
     * Modules published to this proxy (gomodproxy publish, PUT /-/api/publish/...) rather than fetched:
     * the route is private, and its versions are what was published, nothing else.
     */
    publish: z.boolean().default(false),
  })
  .refine((r) => !r.publish || r.sources === undefined, {
    message: 'a route with publish: true serves only what was published; remove its sources (or use a second route for modules fetched from elsewhere)',
    path: ['sources'],
  })
  .refine((r) => !r.publish || r.sumdb !== true, {
    message: 'published modules are private and never sent to the checksum database; remove sumdb: true from this route',
    path: ['sumdb'],
  });

export const denySchema = z.strictObject({
  match: patternList,
  /** Only these versions, e.g. "v1.2.3", "<v1.4.2", ">=v2.0.0 <v2.1.1", "v1.0.0 || >=v3.0.0"; default all. */
  versions: z.string().min(1).optional(),
  /** Shown to the go user. */
  reason: z.string().min(1).default('blocked by the proxy operator'),
});

// ---- git: the direct source (modules straight from version control) ----

const vcsName = z.enum(['git', 'hg', 'svn', 'bzr', 'fossil']);

const gitCredentialSchema = z.strictObject({
  /** Host (and :port) exactly as in the remote URL git uses, e.g. github.com or git.corp:8443; sent to no other host. */
  host: z.string().regex(/^[A-Za-z0-9.-]+(:\d+)?$/, 'expected a host name, optionally with :port, such as github.com or git.corp:8443'),
  username: z.string().optional(),
  password: z.string().optional(),
  /** Access token, sent as the password (username default x-access-token). */
  token: z.string().optional(),
  /** Private key file for ssh remotes of this host. */
  sshKey: z.string().optional(),
  /** Also send it over plain http:// to this host. */
  allowHttp: z.boolean().default(false),
});

export const gitSchema = z.strictObject({
  /** Serve `direct` from git repositories (no Go toolchain needed). */
  enabled: z.boolean().default(true),
  /** Cache of bare repositories; default <data>/vcs. */
  cacheDir: z.string().min(1).optional(),
  /** Bound of that cache on disk; least recently used repositories go first (0 = unbounded). */
  maxCacheBytes: size.default(10 * 2 ** 30),
  /** Deadline of one git process (clone, fetch, archive). */
  timeout: duration.default(600_000),
  /** How long one `git ls-remote` answer is reused across requests. */
  refsTtl: duration.default(5_000),
  /** How long a module path -> repository answer (including ?go-get=1 lookups) is reused. */
  discoveryTtl: duration.default(600_000),
  /** Fetch single refs with --depth=1 until a request needs history. */
  shallow: z.boolean().default(true),
  /** At most this many network git operations at once. */
  concurrency: z.number().int().min(1).max(256).default(16),
  /** GOINSECURE-style patterns allowed over plain http; default $GOINSECURE. */
  insecure: z.string().optional(),
  /** Module path prefix -> repository, for hosts that serve no go-import meta tags. */
  repos: z.array(z.strictObject({ prefix: z.string().min(1), url: z.string().min(1), vcs: vcsName.optional(), subdir: z.string().optional() })).default([]),
  /** Credentials per host (https/http via a credential helper, ssh keys via an ssh config). */
  credentials: z.array(gitCredentialSchema).default([]),
});

export const gocmdSchema = z.strictObject({
  /** Fetch modules of the listed version control systems by running the go command. */
  enabled: z.boolean().default(false),
  vcs: z.array(vcsName).default(['hg', 'svn', 'bzr', 'fossil']),
  /** Deadline of one go process. */
  timeout: duration.default(600_000),
  goBinary: z.string().min(1).default('go'),
  concurrency: z.number().int().min(1).max(64).default(4),
  /** The go command's module cache; default <data>/gocmd. */
  dir: z.string().min(1).optional(),
});

// ---- end of git ----

// ---- redis: coordination of instances on several hosts over one shared store ----

/** A comma-separated string or a list, as an environment variable or the file writes it. */
const listOf = <T extends z.ZodType>(item: T) =>
  z.preprocess(
    (v) =>
      typeof v === 'string'
        ? v
            .split(',')
            .map((x) => x.trim())
            .filter(Boolean)
        : v,
    z.array(item).min(1),
  );

const redisUrl = z.string().regex(/^rediss?:\/\/[^/?#]+/, 'expected redis://[:password@]host[:port][/db], or rediss:// for TLS');

const redisSchema = z
  .strictObject({
    /** One server: redis://[:password@]host[:port][/db], rediss:// for TLS. */
    url: redisUrl.optional(),
    /** Sentinel: the sentinels (host:port) that name the current master of `name`. */
    sentinels: listOf(z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[^:[\]\s]+):\d{1,5}$/, 'expected host:port such as sentinel-1:26379')).optional(),
    /** The master group the sentinels watch. */
    name: z.string().min(1).optional(),
    /** Cluster: some of its nodes, as redis:// or rediss:// URLs; the rest are discovered. */
    cluster: listOf(redisUrl).optional(),
    /** Put before every key and channel, so several deployments can share one Redis (pub/sub ignores the database number: a prefix apiece). */
    keyPrefix: z.string().min(1).default('gomodproxy:'),
    /** How long a fetch lock outlives a holder that stopped renewing it (a crashed instance). */
    lockTtl: duration.refine((v) => v >= 1000, { message: 'must be at least 1s: a live holder renews it every third of it' }).default(15_000),
    /** The name this instance gives its host in fetch locks (default: the OS hostname): instances with one name read each other's staging files, so they must share a file system. */
    hostName: z.string().min(1).max(255).optional(),
  })
  .refine((v) => [v.url, v.sentinels, v.cluster].filter((x) => x !== undefined).length === 1, {
    message: 'set exactly one of url (one server), sentinels with name (Sentinel) or cluster (a list of node URLs)',
  })
  .refine((v) => (v.sentinels === undefined) === (v.name === undefined), {
    message: 'sentinels and name go together: name is the master group the sentinels watch',
    path: ['name'],
  });

export type RedisConfig = z.output<typeof redisSchema>;

// ---- end of redis ----

// ---- vulndb: a mirror of the Go vulnerability database ----

/** Paths the server answers itself; the vulnerability database must not shadow them. */
const RESERVED_FIRST = new Set(['-', 'sumdb', 'healthz', 'readyz', 'metrics']);

const vulndbSchema = z.strictObject({
  /** Serve the mirror under `path` (it is fetched only once something asks for it, or refuseVulnerable is on). */
  enabled: z.boolean().default(true),
  /** The database mirrored: https://..., http://..., or file:///dir of one in the go.dev/security/vuln/database layout. */
  url: z
    .string()
    .regex(/^(https?:\/\/[^/\s]+(\/\S*)?|file:\/\/\/\S*)$/, 'expected https://host[/path], http://host[/path] or file:///dir')
    .default('https://vuln.go.dev'),
  /** Where it is served: govulncheck -db http(s)://<proxy><path>. Its first segment has no dot, so it is no module path. */
  path: z
    .string()
    .default('/vuln/')
    .transform((v) => `/${v.replace(/^\/+|\/+$/g, '')}/`)
    .refine((v) => /^\/[A-Za-z0-9_~-]+(\/[A-Za-z0-9._~-]+)*\/$/.test(v) && !RESERVED_FIRST.has(v.split('/')[1] as string), {
      message: 'expected a path such as /vuln/ whose first segment has no dot (so it can be no module path) and is not -, sumdb, healthz, readyz or metrics',
    }),
  /** How long a snapshot is fresh; then the source is asked whether it changed. */
  ttl: duration.default(3_600_000),
  /** Refuse versions with known vulnerabilities (403 naming the advisories and the first fixed version); lists leave them out. */
  refuseVulnerable: z.boolean().default(false),
  /** Entries fetched at once during a refresh. */
  concurrency: z.number().int().min(1).max(64).default(8),
});

// ---- end of vulndb ----

// ---- store: where artifacts live ----

const fsStoreSchema = z.strictObject({
  /** The data folder (`data`), in the go command's download-cache layout. */
  type: z.literal('fs'),
});

const s3StoreSchema = z.strictObject({
  /** An S3 or S3-compatible bucket that instances on several hosts share. */
  type: z.literal('s3'),
  bucket: z
    .string({ error: (iss) => (iss.input === undefined ? 'required with type s3: the bucket that holds the cache' : undefined) })
    .regex(/^[^/\s]+$/, 'expected a bucket name without "/" or spaces; a path inside the bucket goes in store.prefix'),
  /** Key prefix inside the bucket ('' for its root): the objects under it are a GOPROXY tree. */
  prefix: z
    .string()
    .default('')
    .refine((v) => !v.startsWith('/'), { message: 'expected a key prefix such as gomodproxy or cache/go, without a leading "/"' })
    .transform((v) => v.replace(/\/+$/, ''))
    .refine((v) => v === '' || v.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..'), {
      message: 'expected a key prefix such as gomodproxy or cache/go: no empty, "." or ".." segments',
    }),
  /** An S3-compatible service's URL (MinIO, Ceph, R2...); default: AWS S3 of the region. */
  endpoint: z
    .string()
    .refine((v) => /^https?:\/\/[^/@\s]+(\/.*)?$/.test(v), {
      message: 'expected the service URL, such as https://s3.example.com or http://127.0.0.1:9000 (no credentials in it)',
    })
    .optional(),
  /** Default: $AWS_REGION, else us-east-1 (load.ts fills it in). */
  region: z.string().min(1).optional(),
  /** <endpoint>/<bucket>/<key> addressing instead of <bucket>.<endpoint>; most S3-compatible services need it. */
  forcePathStyle: z.boolean().default(false),
  /** Answer .zip hits with a 302 to a presigned URL of the object, so the bytes do not pass through the proxy. */
  presignZips: z.boolean().default(false),
  /** How long such a URL works. */
  presignSeconds: z.number().int().min(1).max(604_800).default(300),
});

export const storeSchema = z
  .discriminatedUnion('type', [fsStoreSchema, s3StoreSchema], {
    error: (iss) => (iss.code === 'invalid_union' ? 'expected type: fs (the data folder) or s3 (a bucket shared by several hosts)' : undefined),
  })
  .default({ type: 'fs' });

// ---- end of store ----

// ---- sync: jobs that keep the cache current on a schedule ----

/** Why a cron string (read in timeZone) can never run, or undefined when it can. */
export function scheduleError(schedule: string, timeZone?: string): string | undefined {
  let cron: Cron;
  try {
    cron = new Cron(schedule, { paused: true, timezone: timeZone, mode: '5-or-6-parts' });
  } catch (err) {
    const message = (err as Error).message.replace(/^Cron(Pattern|Date): /, '');
    return `${message}; expected cron syntax: five fields (minute hour day-of-month month day-of-week, such as "0 3 * * *" for 03:00 every day) or six with seconds first ("*/30 * * * * *")`;
  }
  try {
    // An unknown time zone shows only when a date is computed in it.
    if (cron.nextRun() === null) return `${JSON.stringify(schedule)} never comes (no date matches it); check its day and month fields`;
  } catch (err) {
    return (err as Error).message.replace(/^Cron(Pattern|Date): /, '').split('. ')[0];
  } finally {
    cron.stop();
  }
  return undefined;
}

/** GOPRIVATE-style patterns, as one comma-separated string or a list of them. */
const watchList = z
  .union([z.string(), z.array(z.string())])
  .transform((v) => (Array.isArray(v) ? v : [v]).flatMap((x) => x.split(',')).filter((x) => x !== ''))
  .pipe(z.array(z.string().regex(/^[^\s!]+$/, 'expected a module path or GOPRIVATE-style glob such as example.com/team/*, without spaces or "!" exclusions')));

const syncJobSchema = z
  .strictObject({
    /** Names the job in logs, metrics ({job}), its lock and POST /-/api/sync/<name>. */
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'expected 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit'),
    /** When it runs, in cron syntax: "0 3 * * *" (five fields), or six with seconds first. */
    schedule: z.string().superRefine((v, ctx) => {
      const bad = scheduleError(v);
      if (bad !== undefined) ctx.addIssue({ code: 'custom', message: bad });
    }),
    /** The IANA time zone the schedule is read in (Europe/Berlin); default the server's. */
    timezone: z.string().min(1).optional(),
    /** Module patterns (GOPRIVATE globs) matched against the cached modules; a plain module path is watched even before it is cached. */
    watch: watchList.default([]),
    /** Which versions of a watched module to fetch: latest (its @latest), all (every listed version), or { newest: N } per major version. */
    versions: z
      .union([z.enum(['latest', 'all']), z.strictObject({ newest: z.number().int().min(1).max(10_000) })], {
        error: 'expected latest, all, or { newest: N } (the newest N versions of each major version)',
      })
      .default('latest'),
    /** A prefetch file (go.mod, go.sum, go list -m all output, module@version lines), read again at every run. */
    prefetch: z.string().min(1).optional(),
    /** Also every version each fetched go.mod requires, transitively. */
    deps: z.boolean().default(false),
  })
  .superRefine((v, ctx) => {
    if (v.timezone !== undefined) {
      const bad = scheduleError(v.schedule, v.timezone);
      if (bad !== undefined && scheduleError(v.schedule) === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['timezone'],
          message: `${JSON.stringify(v.timezone)} is not a time zone; expected an IANA name such as Europe/Berlin or UTC`,
        });
      }
    }
    if (v.watch.length === 0 && v.prefetch === undefined) {
      ctx.addIssue({ code: 'custom', path: ['watch'], message: 'the job has nothing to do: give watch (module patterns), prefetch (a file), or both' });
    }
  });

const syncSchema = z.array(syncJobSchema).superRefine((jobs, ctx) => {
  const seen = new Map<string, number>();
  jobs.forEach((j, i) => {
    const first = seen.get(j.name);
    if (first !== undefined)
      ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `${j.name} is also the name of sync[${first}]; give each job its own` });
    else seen.set(j.name, i);
  });
});

export type SyncJobConfig = z.output<typeof syncJobSchema>;
export type SyncVersions = SyncJobConfig['versions'];

// ---- end of sync ----
// ---- gc: garbage collection of the cache ----

/** A cron expression (5 fields, or 6 with seconds first), checked by the scheduler that will run it. */
const cronSchema = z.string().superRefine((v, ctx) => {
  try {
    new Cron(v, { paused: true }).stop();
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `expected a cron expression such as "0 3 * * *" (03:00 every day): ${(err as Error).message}` });
  }
});

const pinSchema = z.string().superRefine((v, ctx) => {
  const problem = patternAtVersionProblem(v);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

export const gcSchema = z.strictObject({
  /** Bound of the module data in the store (zips, .mod, .info, hashes, lists); unset: no size bound. */
  maxBytes: size.optional(),
  /** Versions not served for this long are evicted (their zips, then their .mod and .info); unset: no age bound. */
  maxAge: duration.optional(),
  /** When the server collects on its own (cron syntax, e.g. "0 3 * * *"); unset: only `gomodproxy gc` does. */
  schedule: cronSchema.optional(),
  /** Patterns never evicted: GOPRIVATE-style globs or module paths, optionally @version (a comma-separated string or a list). */
  pin: z
    .preprocess(
      (v) =>
        typeof v === 'string'
          ? v
              .split(',')
              .map((x) => x.trim())
              .filter(Boolean)
          : v,
      z.array(pinSchema),
    )
    .default([]),
  /** How often each process writes down which artifacts it served (what "last served" is made of). */
  servedFlush: duration.refine((v) => v >= 1000, { message: 'must be at least 1s' }).default(60_000),
});

export type GcSettings = z.output<typeof gcSchema>;

// ---- end of gc ----

export const configSchema = z.strictObject({
  /** Address to serve on. */
  listen: hostPort.default('0.0.0.0:3000'),
  /** HTTPS: certificate and key files (PEM), reloaded on SIGHUP; TLS 1.2 and later only. */
  tls: z
    .strictObject({
      cert: z.string().min(1),
      key: z.string().min(1),
      /** CA bundle for client certificates; with it, clients may present one (mTLS). */
      clientCa: z.string().min(1).optional(),
      /** Refuse connections without a valid client certificate. */
      requireClientCert: z.boolean().default(false),
    })
    .optional(),
  /** Addresses or CIDR ranges of reverse proxies whose X-Forwarded-For/-Proto are believed. */
  trustedProxies: z
    .preprocess(
      (v) =>
        typeof v === 'string'
          ? v
              .split(',')
              .map((x) => x.trim())
              .filter(Boolean)
          : v,
      z.array(
        z.string().superRefine((v, ctx) => {
          try {
            parseTrustedProxy(v.trim());
          } catch (err) {
            ctx.addIssue({ code: 'custom', message: (err as Error).message });
          }
        }),
      ),
    )
    .default([]),
  /** Data folder: the disk cache (itself a valid file:// GOPROXY) and the server's state. */
  data: z.string().min(1).default('./data'),
  /** Where artifacts live: the data folder (default), or an S3 bucket that several hosts share. */
  store: storeSchema,
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
  /**
   * Serve only what is cached: no upstream, no version control, no checksum database is asked,
   * and a miss is a 404 that says how to add it. Default: on when `upstream` is `off`.
   */
  offline: z.boolean().optional(),
  /** Private modules, GOPRIVATE syntax: served only direct from version control, never sent to a public upstream or the checksum database. Default: $GONOPROXY, else $GOPRIVATE. */
  private: z.string().optional(),
  /** Ordered routes; the first whose patterns match a module path decides its sources, checks and readers. */
  routes: z.array(routeSchema).default([]),
  /** Who may read modules no route covers (and routes without their own `read`). */
  read: z.array(authRuleSchema).min(1).default(['anonymous']),
  /** Modules (or versions of them) refused with 403 and the reason. */
  deny: z.array(denySchema).default([]),
  /** Allow-list mode: when set, only public modules matching these patterns are served (private ones are the operator's own and exempt). */
  allow: patternList.optional(),
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
      /** How long an upstream's "not found" is remembered, so asking again costs no upstream request (0: never). */
      notFoundTtl: duration.default(30_000),
      /** How long an upstream answer that failed our checks is remembered before the upstream is asked again (0: never). */
      refusedTtl: duration.default(60_000),
      /** How long a zip miss waits for another instance already fetching it before fetching it itself. */
      followTimeout: duration.default(120_000),
      /** The module index (admin API, web UI) walks the store again this often, for changes other instances could not announce (0: never). */
      indexRescan: duration.default(15 * 60_000),
      /** Free disk space kept in reserve: misses that would eat into it are not stored, and /readyz reports the disk low. */
      minFree: size.default(512 * 2 ** 20),
      memory: z
        .strictObject({
          /** Bound of the in-memory cache of small blobs, for all worker processes together (each takes its share). */
          maxBytes: size.default(64 * 2 ** 20),
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
  /** The direct source: git repositories, natively. */
  git: gitSchema.prefault({}),
  /** The go command as a source, for hg, svn, bzr and fossil. */
  gocmd: gocmdSchema.prefault({}),
  /** Authentication, rate limits and the audit log; with nothing set, everyone is anonymous and may read. */
  auth: authSchema.prefault({}),
  /** Several instances over one shared store: fetch locks, shared answers and invalidation through Redis; unset: this host alone. */
  redis: redisSchema.optional(),
  /** Jobs that keep the cache current on a schedule (one instance of a cluster runs each). */
  sync: syncSchema.default([]),
  /** Jobs the server runs (POST /-/api/prefetch, sync). */
  jobs: z
    .strictObject({
      /** Module versions one job fetches at once. */
      concurrency: z.number().int().min(1).max(64).default(8),
      /** Jobs whose records are kept for GET /-/api/jobs; older ones are removed. */
      history: z.number().int().min(1).max(1000).default(50),
    })
    .prefault({}),
  /** A mirror of the Go vulnerability database for govulncheck, the admin API and the refusing policy. */
  vulndb: vulndbSchema.prefault({}),
  /** Bounds of the cache and what is never evicted. */
  gc: gcSchema.prefault({}),
});

export type ConfigInput = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;
export type UpstreamInput = z.output<typeof upstreamSchema>;
export type Timeouts = z.output<typeof timeoutsSchema>;
export type Balance = z.output<typeof balanceSchema>;
export type StoreSettings = z.output<typeof storeSchema>;

export function parseListen(v: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(v.trim());
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  return { host: m[1] ?? m[2] ?? '', port };
}
