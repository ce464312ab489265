// The admin API of jobs: POST /-/api/prefetch (fill the cache, as `gomodproxy prefetch` does,
// in the background), GET /-/api/jobs and /-/api/jobs/<id> (any worker of any instance answers:
// records live in the store), GET /-/api/sync and POST /-/api/sync/<name> (the scheduled sync
// jobs, and one run now).
import { ProxyError } from '../errors.js';
import { intParam, sendJson, type AdminEndpoint } from './admin.js';
import type { JobKind, JobRecord, Jobs } from './jobs.js';
import { InputError, detectFormat, parseInput, parseSpec, type Replacement, type Wanted } from './prefetch-input.js';
import type { Exchange } from './respond.js';
import type { SyncScheduler } from './sync.js';

/** A go.sum of a large project is a few hundred KiB. */
const MAX_PREFETCH_BODY = 8 << 20;
const PREFETCH_KEYS = new Set(['modules', 'text', 'name', 'deps']);

export interface JobEndpointDeps {
  jobs: Jobs;
  sync: SyncScheduler;
  offline: boolean;
  /** The server's path prefix, for the job URLs it answers with. */
  pathPrefix: string;
}

/** What a POST /-/api/prefetch body asks for; throws a 400 naming what is wrong. */
export function prefetchRequest(b: Record<string, unknown>): { wanted: Wanted[]; replace: Replacement[]; deps: boolean; what: string } {
  const unknown = Object.keys(b).filter((k) => !PREFETCH_KEYS.has(k));
  if (unknown.length > 0)
    throw new ProxyError(
      'bad-request',
      `unknown field ${unknown.map((k) => JSON.stringify(k)).join(', ')}; the body takes "modules", "text" (with "name"), and "deps"`,
    );
  const { modules, text, name = 'text', deps = false } = b;
  if (typeof deps !== 'boolean') throw new ProxyError('bad-request', '"deps" must be true or false');
  if (modules !== undefined && (!Array.isArray(modules) || !modules.every((m) => typeof m === 'string'))) {
    throw new ProxyError('bad-request', '"modules" must be a list of strings such as "example.com/m@v1.2.3" or "example.com/m@latest"');
  }
  // The file the text comes from (go.sum, go.mod): it decides the format first, and names lines in errors.
  if (typeof name !== 'string' || !/^[\w.@+-]{1,100}$/.test(name)) throw new ProxyError('bad-request', '"name" must be a file name such as go.sum or go.mod');
  if (text !== undefined && typeof text !== 'string')
    throw new ProxyError('bad-request', '"text" must be a string: a go.mod, a go.sum, the output of go list -m all (or -json), or module@version lines');
  const wanted: Wanted[] = [];
  let replace: Replacement[] = [];
  const parts: string[] = [];
  try {
    (modules ?? []).forEach((m, i) => wanted.push(parseSpec(m as string, `modules[${i}]`)));
    if (modules !== undefined && modules.length > 0) parts.push(`${modules.length} module${modules.length === 1 ? '' : 's'}`);
    if (text !== undefined && text.trim() !== '') {
      const input = parseInput(text, name);
      wanted.push(...input.wanted);
      replace = input.replace;
      parts.push(`${name === 'text' ? 'a text' : name} (${detectFormat(text, name)}, ${input.wanted.length} entries)`);
    }
  } catch (err) {
    if (err instanceof InputError) throw new ProxyError('bad-request', err.message);
    throw err;
  }
  if (wanted.length === 0) {
    throw new ProxyError(
      'bad-request',
      'nothing to fetch: give {"modules": ["example.com/m@v1.2.3", "example.com/n@latest"]} or {"text": "<a go.mod, go.sum, or go list -m all output>"}, and "deps": true for their requirements too',
    );
  }
  return { wanted, replace, deps, what: `prefetch ${parts.join(' and ')}${deps ? ', with their requirements' : ''}` };
}

export function jobEndpoints(d: JobEndpointDeps): AdminEndpoint[] {
  const jobUrl = (id: string): string => `${d.pathPrefix}/-/api/jobs/${id}`;
  const accepted = (ex: Exchange, job: JobRecord): void => {
    ex.res.setHeader('Location', jobUrl(job.id));
    sendJson(ex, 202, { job, url: jobUrl(job.id) });
  };
  return [
    {
      method: 'POST',
      path: /^prefetch$/,
      usage: 'use POST /-/api/prefetch with {"modules": ["example.com/m@v1.2.3"], "deps": false} or {"text": "<go.sum>"}',
      run: async ({ ex, body }) => {
        if (d.offline) {
          throw new ProxyError(
            'conflict',
            'gomodproxy is offline (offline: true, or upstream: off), so nothing can be fetched; prefetch on a connected machine and bring the data folder here',
          );
        }
        const req = prefetchRequest(await body(MAX_PREFETCH_BODY));
        const { record } = await d.jobs.submit(
          'prefetch',
          req.what,
          (run) => run.prefetch(req.wanted, { deps: req.deps, replace: req.replace }).then(() => undefined),
          {
            by: ex.user,
          },
        );
        accepted(ex, record);
      },
    },
    {
      method: 'GET',
      path: /^jobs$/,
      usage: 'use GET /-/api/jobs (?kind=prefetch|sync, ?limit=N) for the recent jobs',
      run: async ({ ex, query }) => {
        const kind = query.get('kind');
        if (kind !== null && kind !== 'prefetch' && kind !== 'sync')
          throw new ProxyError('bad-request', `kind must be prefetch or sync, not ${JSON.stringify(kind)}`);
        const limit = intParam(query, 'limit', 50, 1000);
        const name = query.get('name') ?? undefined;
        sendJson(ex, 200, { jobs: await d.jobs.list(limit, { kind: (kind ?? undefined) as JobKind | undefined, name }) });
      },
    },
    {
      method: 'GET',
      path: /^jobs\/([^/]+)$/,
      usage: 'use GET /-/api/jobs/<id> for one job',
      run: async ({ ex, params }) => {
        const id = params[0] as string;
        const job = await d.jobs.get(id);
        if (!job)
          throw new ProxyError('not-found', `no job ${JSON.stringify(id)}: it never existed, or is older than the jobs.history kept; see GET /-/api/jobs`);
        sendJson(ex, 200, { job });
      },
    },
    {
      method: 'GET',
      path: /^sync$/,
      usage: 'use GET /-/api/sync for the sync jobs',
      run: async ({ ex }) => {
        sendJson(ex, 200, { sync: await d.sync.status() });
      },
    },
    {
      method: 'POST',
      path: /^sync\/([^/]+)$/,
      usage: 'use POST /-/api/sync/<name> to run a sync job now',
      run: async ({ ex, params }) => {
        accepted(ex, await d.sync.runNow(params[0] as string, ex.user));
      },
    },
  ];
}
