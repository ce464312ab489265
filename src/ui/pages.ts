// The web UI's pages, rendered from plain view models (src/server/ui.ts gathers them). Every
// value goes through html``, so a hostile module path or go.mod renders as text. Pages work
// without JavaScript; forms that change anything carry the CSRF token and lead through a
// confirmation page.
import { SCRIPT, STYLESHEET } from './assets.js';
import { lineChart, type Point } from './charts.js';
import { html, uiPath, type Html } from './html.js';

export interface PageContext {
  /** The UI's root path, ending in "/" (e.g. /-/ui/). */
  root: string;
  /** Who is signed in; null: anonymous. */
  user: string | null;
  isAdmin: boolean;
  /** Whether a sign-in method is configured (else there is no "sign in" link). */
  canSignIn: boolean;
}

export function layout(ctx: PageContext, title: string, body: Html, opts: { live?: boolean; search?: string } = {}): Html {
  const r = ctx.root;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${title} · gomodproxy</title>
<link rel="stylesheet" href="${r}assets/${STYLESHEET.name}">
<script src="${r}assets/${SCRIPT.name}" defer></script>
</head>
<body${opts.live ? html` data-stats="${r}stats.json"` : ''}>
<a class="skip" href="#main">Skip to content</a>
<header class="top"><div class="bar">
<a class="brand" href="${r}">gomodproxy</a>
<nav aria-label="Main"><ul>
<li><a href="${r}">Home</a></li>
<li><a href="${r}search">Modules</a></li>
${
  ctx.isAdmin
    ? html`<li><a href="${r}admin">Operations</a></li>
        <li><a href="${r}admin/audit">Audit log</a></li>`
    : ''
}
</ul></nav>
<span class="who">${ctx.user ? html`Signed in as <strong>${ctx.user}</strong>` : ctx.canSignIn ? html`<a href="${r}signin">Sign in</a>` : 'Anonymous'}</span>
</div></header>
<main id="main">
${body}
</main>
<footer>gomodproxy · a Go module proxy · <a href="${r}search${opts.search ? `?q=${encodeURIComponent(opts.search)}` : ''}">search modules</a></footer>
</body>
</html>
`;
}

/**
 * A table that may be wider than a phone scrolls inside its box; the box takes the keyboard focus
 * so that it can be scrolled without a mouse, and its name says what it holds.
 */
function tableBox(label: string, table: Html): Html {
  return html`<div class="table" role="region" aria-label="${label}" tabindex="0">${table}</div>`;
}

// ---- home ----

export interface UpstreamView {
  id: string;
  healthy: boolean;
  restingForMs: number;
  lastFailure: string | null;
}

export interface JobView {
  name: string;
  state: string;
  detail: string;
}

export interface RecentView {
  path: string;
  version: string;
  storedAt: string;
}

export interface HomeView {
  proxyUrl: string;
  privatePatterns: string;
  authOn: boolean;
  host: string;
  modules: number;
  versions: number;
  bytes: number;
  hitRatio: number | null;
  upstreams: UpstreamView[];
  sumdb: string | null;
  offline: boolean;
  jobs: JobView[];
  recent: RecentView[];
}

export function homePage(ctx: PageContext, v: HomeView): Html {
  const r = ctx.root;
  // Built outside the template: a formatter may fold the template's own line breaks, and these two are commands.
  const goEnv = [`go env -w GOPROXY=${v.proxyUrl}`, ...(v.privatePatterns ? [`go env -w GONOSUMDB=${v.privatePatterns}`] : [])].join('\n');
  return layout(
    ctx,
    'Home',
    html`<h1>Go module proxy</h1>
      <p>
        This server is a <code>GOPROXY</code>: it serves Go modules, keeps every version it has served, and checks public ones against the checksum database.
      </p>
      <h2 id="use">Use it</h2>
      <pre><code>${goEnv}</code></pre>
      ${
        v.authOn
          ? html`<p>
                Sign-in is required for some modules. Put your credentials in <code>~/.netrc</code> (the go command matches the host <em>with</em> its
                port${v.proxyUrl.startsWith('https:') ? '' : html`, and sends them over https only: reach this server through TLS`}):
              </p>
              <pre><code>machine ${v.host} login YOUR-USER password YOUR-TOKEN</code></pre>`
          : ''
      }
      <form class="search" role="search" action="${r}search" method="get" data-instant="${r}search/results">
        <label for="q" class="visually-hidden">Search modules</label>
        <input id="q" type="search" name="q" placeholder="Search modules by path" autocomplete="off" />
        <button type="submit">Search</button>
      </form>
      <div id="results"></div>
      <h2>At a glance</h2>
      <ul class="cards" aria-label="Figures">
        <li class="card"><span class="label">Modules</span><span class="value" data-stat="modules">${v.modules}</span></li>
        <li class="card"><span class="label">Versions</span><span class="value" data-stat="versions">${v.versions}</span></li>
        <li class="card"><span class="label">Stored</span><span class="value" data-stat="bytes">${formatBytes(v.bytes)}</span></li>
        <li class="card"><span class="label">Hit ratio</span><span class="value" data-stat="hitRatio">${formatRatio(v.hitRatio)}</span></li>
      </ul>
      <h2>Upstreams</h2>
      ${v.offline ? html`<p class="notice">Offline: this proxy serves only what it holds and asks no upstream.</p>` : upstreamTable(v.upstreams)}
      <p>Checksum database: ${v.sumdb ? html`<strong>${v.sumdb}</strong>, proxied at <code>/sumdb/${v.sumdb}/</code>` : 'off'}</p>
      ${
        v.jobs.length > 0
          ? html`<h2>Sync jobs</h2>
              <ul>
                ${v.jobs.map((j) => html`<li><strong>${j.name}</strong>: ${j.state} <span class="muted">${j.detail}</span></li>`)}
              </ul>`
          : ''
      }
      <h2>Recently stored</h2>
      ${
        v.recent.length === 0
          ? html`<p class="muted">Nothing yet.</p>`
          : html`<ul>
              ${v.recent.map((x) => html`<li><a href="${uiPath(r, 'modules', x.path)}">${x.path}</a> <code>${x.version}</code> <span class="muted">${timeOf(x.storedAt)}</span></li>`)}
            </ul>`
      }`,
    { live: true },
  );
}

export function upstreamTable(ups: readonly UpstreamView[]): Html {
  if (ups.length === 0) return html`<p class="muted">No upstream proxies (direct from version control only).</p>`;
  return tableBox(
    'Upstreams',
    html`<table class="stack">
      <thead>
        <tr>
          <th scope="col">Upstream</th>
          <th scope="col">State</th>
          <th scope="col">Last failure</th>
        </tr>
      </thead>
      <tbody>
        ${ups.map(
          (u) =>
            html`<tr>
              <td data-label="Upstream"><code>${u.id}</code></td>
              <td data-label="State">
                ${u.healthy ? html`<span class="tag ok">healthy</span>` : html`<span class="tag bad">resting ${Math.ceil(u.restingForMs / 1000)} s</span>`}
              </td>
              <td data-label="Last failure">${u.lastFailure ?? html`<span class="muted">none</span>`}</td>
            </tr>`,
        )}
      </tbody>
    </table>`,
  );
}

// ---- search ----

export interface ModuleRow {
  path: string;
  versions: number;
  latest: string | null;
  bytes: number;
}

export interface SearchView {
  q: string;
  total: number;
  offset: number;
  limit: number;
  modules: ModuleRow[];
}

export function searchResults(ctx: PageContext, v: SearchView): Html {
  const r = ctx.root;
  if (v.total === 0) return html`<p>No cached module matches <code>${v.q}</code>.</p>`;
  const from = v.offset + 1;
  const to = v.offset + v.modules.length;
  const page = (offset: number): string => `${r}search?q=${encodeURIComponent(v.q)}&offset=${offset}`;
  return html`<p class="muted" aria-live="polite">
      ${v.total} module${v.total === 1 ? '' : 's'}${v.total > v.modules.length ? html`, ${from}–${to} shown` : ''}
    </p>
    ${tableBox(
      'Matching modules',
      html`<table>
        <thead>
          <tr>
            <th scope="col">Module</th>
            <th scope="col">Latest</th>
            <th scope="col" class="num">Versions</th>
            <th scope="col" class="num hide-narrow">Size</th>
          </tr>
        </thead>
        <tbody>
          ${v.modules.map(
            (m) =>
              html`<tr>
                <td><a href="${uiPath(r, 'modules', m.path)}">${m.path}</a></td>
                <td>${m.latest ? html`<code>${m.latest}</code>` : ''}</td>
                <td class="num">${m.versions}</td>
                <td class="num hide-narrow">${formatBytes(m.bytes)}</td>
              </tr>`,
          )}
        </tbody>
      </table>`,
    )}
    <nav class="pager" aria-label="Pages">
      ${v.offset > 0 ? html`<a href="${page(Math.max(0, v.offset - v.limit))}">Previous</a>` : ''}${to < v.total ? html`<a href="${page(to)}">Next</a>` : ''}
    </nav>`;
}

export function searchPage(ctx: PageContext, v: SearchView): Html {
  const r = ctx.root;
  return layout(
    ctx,
    v.q ? `Modules matching ${v.q}` : 'Modules',
    html`<h1>Modules</h1>
      <form class="search" role="search" action="${r}search" method="get" data-instant="${r}search/results">
        <label for="q" class="visually-hidden">Search modules</label>
        <input id="q" type="search" name="q" value="${v.q}" placeholder="Module path or part of it" autocomplete="off" />
        <button type="submit">Search</button>
      </form>
      <div id="results">${searchResults(ctx, v)}</div>`,
    { search: v.q },
  );
}

// ---- module ----

export interface VersionView {
  version: string;
  time: string | null;
  storedAt: string | null;
  bytes: number;
  hasZip: boolean;
  source: string | null;
  retracted: string[] | null;
}

export interface RequireView {
  path: string;
  version: string;
  indirect: boolean;
  cached: boolean;
}

export interface ModuleView {
  path: string;
  latest: string | null;
  verification: 'private' | 'unverified' | string;
  deprecated: string | null;
  versions: VersionView[];
  goMod: { version: string; text: string; requires: RequireView[] } | null;
  /** null: the cached go.mod files are still being read. */
  dependents: { path: string; version: string }[] | null;
  /** Set for admins: the token their action forms carry. */
  csrf: string | null;
}

export function modulePage(ctx: PageContext, v: ModuleView): Html {
  const r = ctx.root;
  const verification =
    v.verification === 'private'
      ? html`<span class="tag">private</span> never sent to the checksum database`
      : v.verification === 'unverified'
        ? html`<span class="tag warn">unverified</span> not checked against a checksum database (GONOSUMDB or off)`
        : html`<span class="tag ok">verified</span> checked against ${v.verification.replace(/^checksum-database:/, '')} before it was stored`;
  const actions = (): Html =>
    v.csrf
      ? html`<div class="actions">
          <a class="button" href="${r}admin/confirm?action=invalidate&amp;module=${encodeURIComponent(v.path)}">Refresh list…</a>
          <a class="button" href="${r}admin/confirm?action=pin&amp;module=${encodeURIComponent(v.path)}">Pin…</a>
          <a class="button" href="${r}admin/confirm?action=prefetch&amp;module=${encodeURIComponent(v.path)}">Prefetch latest…</a>
        </div>`
      : html``;
  return layout(
    ctx,
    v.path,
    html`<h1>${v.path}</h1>
      ${v.deprecated !== null ? html`<p class="notice bad"><strong>Deprecated:</strong> ${v.deprecated}</p>` : ''}
      <dl class="facts">
        <dt>Latest</dt>
        <dd>${v.latest ? html`<code>${v.latest}</code>` : 'none'}</dd>
        <dt>Checksums</dt>
        <dd>${verification}</dd>
      </dl>
      <h2>Get it</h2>
      <pre><code>go get ${v.path}@${v.latest ?? 'latest'}</code></pre>
      ${actions()}
      <h2>Versions</h2>
      ${tableBox(
        'Versions',
        html`<table class="versions stack">
          <thead>
            <tr>
              <th scope="col">Version</th>
              <th scope="col">Time</th>
              <th scope="col" class="num">Size</th>
              <th scope="col" class="hide-narrow">From</th>
              <th scope="col">Notes</th>
              ${v.csrf ? html`<th scope="col"><span class="visually-hidden">Actions</span></th>` : ''}
            </tr>
          </thead>
          <tbody>
            ${v.versions.map((x) => {
              const notes = [
                x.retracted ? html`<span class="tag bad">retracted</span> ${x.retracted.join('; ')}` : '',
                x.hasZip ? '' : html` <span class="tag">no zip</span>`,
              ];
              return html`<tr>
                <td data-label="Version"><code>${x.version}</code></td>
                <td data-label="Time">${x.time ? timeOf(x.time) : html`<span class="muted">unknown</span>`}</td>
                <td data-label="Size" class="num">${formatBytes(x.bytes)}</td>
                <td data-label="From" class="hide-narrow">${x.source ?? html`<span class="muted">unknown</span>`}</td>
                <td data-label="Notes" class="${x.retracted || !x.hasZip ? '' : 'empty'}">${notes}</td>
                ${
                  v.csrf
                    ? html`<td class="act">
                        <a
                          href="${r}admin/confirm?action=purge&amp;module=${encodeURIComponent(v.path)}&amp;version=${encodeURIComponent(x.version)}"
                          aria-label="Purge ${v.path}@${x.version}"
                          >Purge…</a
                        >
                      </td>`
                    : ''
                }
              </tr>`;
            })}
          </tbody>
        </table>`,
      )}
      ${
        v.goMod
          ? html`<h2>go.mod of ${v.goMod.version}</h2>
              <pre class="gomod"><code>${v.goMod.text}</code></pre>
              ${
                v.goMod.requires.length > 0
                  ? html`<h2>Requires</h2>
                      <ul class="requires">
                        ${v.goMod.requires.map(
                          (q) =>
                            html`<li>
                              ${q.cached ? html`<a href="${uiPath(r, 'modules', q.path)}">${q.path}</a>` : q.path}
                              <code>${q.version}</code>${q.indirect ? html` <span class="muted">indirect</span>` : ''}
                            </li>`,
                        )}
                      </ul>`
                  : ''
              }`
          : ''
      }
      <h2>Who depends on this</h2>
      ${
        v.dependents === null
          ? html`<p class="muted">Still reading the cached go.mod files; reload in a moment.</p>`
          : v.dependents.length === 0
            ? html`<p class="muted">No cached module requires it.</p>`
            : html`<ul class="dependents">
                ${v.dependents.map((d) => html`<li><a href="${uiPath(r, 'modules', d.path)}">${d.path}</a> <code>${d.version}</code></li>`)}
              </ul>`
      }`,
  );
}

// ---- operations ----

export interface OpsView {
  window: 'hour' | 'day';
  rps: Point[];
  hitRatio: Point[];
  storeBytes: Point[];
  upstreamMs: { id: string; points: Point[] }[];
  upstreams: UpstreamView[];
  gcLimit: number | null;
  gc: string | null;
  sumdb: string | null;
  jobs: { name: string; schedule: string; lastRun: string; result: string; next: string }[];
  spanMs: number;
}

export function opsPage(ctx: PageContext, v: OpsView): Html {
  const r = ctx.root;
  const other = v.window === 'hour' ? 'day' : 'hour';
  return layout(
    ctx,
    'Operations',
    html`<h1>Operations</h1>
      <p>The last ${v.window} · <a href="${r}admin?window=${other}">show the last ${other}</a></p>
      <div class="charts">
        <figure>
          <figcaption>Requests per second</figcaption>
          ${lineChart(v.rps, { title: 'Requests per second', format: (x) => x.toFixed(x < 10 ? 1 : 0), spanMs: v.spanMs })}
        </figure>
        <figure>
          <figcaption>Hit ratio of .info, .mod and .zip</figcaption>
          ${lineChart(v.hitRatio, { title: 'Hit ratio', format: (x) => `${Math.round(x * 100)}%`, spanMs: v.spanMs, max: 1 })}
        </figure>
        <figure>
          <figcaption>Cache size${v.gcLimit ? ' against the collection limit' : ''}</figcaption>
          ${lineChart(v.storeBytes, {
            title: 'Cache size',
            format: formatBytes,
            spanMs: v.spanMs,
            ...(v.gcLimit ? { mark: { v: v.gcLimit, label: `limit ${formatBytes(v.gcLimit)}` } } : {}),
          })}
        </figure>
        ${v.upstreamMs.map(
          (u) =>
            html`<figure>
              <figcaption>Latency of <code>${u.id}</code></figcaption>
              ${lineChart(u.points, { title: `Mean latency of ${u.id}`, format: (x) => `${Math.round(x)} ms`, spanMs: v.spanMs })}
            </figure>`,
        )}
      </div>
      <h2>Upstreams now</h2>
      ${upstreamTable(v.upstreams)}
      <h2>Checksum database</h2>
      <p>${v.sumdb ?? 'off'}</p>
      <h2>Garbage collection</h2>
      <p>${v.gc ?? 'not configured (gc.maxBytes, gc.maxAge)'}</p>
      <h2>Sync jobs</h2>
      ${
        v.jobs.length === 0
          ? html`<p class="muted">None configured (sync in the configuration).</p>`
          : tableBox(
              'Sync jobs',
              html`<table class="stack">
                <thead>
                  <tr>
                    <th scope="col">Job</th>
                    <th scope="col">Schedule</th>
                    <th scope="col">Last run</th>
                    <th scope="col">Result</th>
                    <th scope="col">Next</th>
                  </tr>
                </thead>
                <tbody>
                  ${v.jobs.map(
                    (j) =>
                      html`<tr>
                        <td data-label="Job">${j.name}</td>
                        <td data-label="Schedule"><code>${j.schedule}</code></td>
                        <td data-label="Last run">${j.lastRun}</td>
                        <td data-label="Result">${j.result}</td>
                        <td data-label="Next">${j.next}</td>
                      </tr>`,
                  )}
                </tbody>
              </table>`,
            )
      }`,
  );
}

export interface AuditRow {
  time: string;
  user: string;
  kind: string;
  module: string;
  version: string;
  status: number;
  allowed: boolean;
  reason: string;
}

export interface AuditView {
  enabled: boolean;
  file: string | null;
  user: string;
  module: string;
  result: string;
  rows: AuditRow[];
  scanned: number;
}

export function auditPage(ctx: PageContext, v: AuditView): Html {
  const r = ctx.root;
  const body = !v.enabled
    ? html`<p class="notice">The audit log is off. Turn it on with <code>auth.audit.enabled: true</code> and <code>auth.audit.file</code> to see it here.</p>`
    : !v.file
      ? html`<p class="notice">The audit log goes to standard output (no <code>auth.audit.file</code>), so this page cannot read it.</p>`
      : html`<form class="filters" method="get" action="${r}admin/audit">
            <div><label for="au">User</label><input id="au" type="text" name="user" value="${v.user}" /></div>
            <div><label for="am">Module</label><input id="am" type="text" name="module" value="${v.module}" /></div>
            <div>
              <label for="ar">Result</label
              ><select id="ar" name="result">
                ${['', 'allowed', 'denied', 'error'].map((o) => html`<option value="${o}" ${o === v.result ? html` selected` : ''}>${o === '' ? 'any' : o}</option>`)}
              </select>
            </div>
            <div><button type="submit">Filter</button></div>
          </form>
          <p class="muted">${v.rows.length} of the last ${v.scanned} lines, newest first.</p>
          ${tableBox(
            'Audit log entries',
            html`<table class="audit stack">
              <thead>
                <tr>
                  <th scope="col">Time</th>
                  <th scope="col">User</th>
                  <th scope="col">What</th>
                  <th scope="col">Module</th>
                  <th scope="col" class="num">Status</th>
                  <th scope="col">Note</th>
                </tr>
              </thead>
              <tbody>
                ${v.rows.map(
                  (x) =>
                    html`<tr>
                      <td data-label="Time">${x.time ? timeOf(x.time, true) : ''}</td>
                      <td data-label="User">${x.user}</td>
                      <td data-label="What">${x.kind}</td>
                      <td data-label="Module" class="${x.module ? '' : 'empty'}">${x.module}${x.version ? html` <code>${x.version}</code>` : ''}</td>
                      <td data-label="Status" class="num ${x.allowed ? (x.status >= 400 ? 'warn' : '') : 'bad'}">${x.status}</td>
                      <td data-label="Note" class="${x.reason ? '' : 'empty'}">${x.reason}</td>
                    </tr>`,
                )}
              </tbody>
            </table>`,
          )}`;
  return layout(
    ctx,
    'Audit log',
    html`<h1>Audit log</h1>
      ${body}`,
  );
}

export interface ConfirmView {
  action: 'purge' | 'invalidate' | 'pin' | 'prefetch';
  module: string;
  version: string | null;
  csrf: string;
}

const SAYS: Record<ConfirmView['action'], string> = {
  purge: 'Remove this version from the store and from every instance’s memory. It is fetched and verified again when next asked for.',
  invalidate: 'Drop the cached version list and @latest of this module on every instance, so a new tag shows at once.',
  pin: 'Keep every version of this module from garbage collection.',
  prefetch: 'Fetch the latest version of this module (and its .info, .mod and .zip) into the cache now, as a job.',
};

export function confirmPage(ctx: PageContext, v: ConfirmView): Html {
  const r = ctx.root;
  const what = v.version ? `${v.module}@${v.version}` : v.module;
  return layout(
    ctx,
    `Confirm ${v.action}`,
    html`<h1>${v.action[0]?.toUpperCase()}${v.action.slice(1)} ${what}?</h1>
      <p>${SAYS[v.action]}</p>
      <form method="post" action="${r}admin/actions">
        <input type="hidden" name="csrf" value="${v.csrf}" />
        <input type="hidden" name="action" value="${v.action}" />
        <input type="hidden" name="module" value="${v.module}" />
        ${v.version ? html`<input type="hidden" name="version" value="${v.version}" />` : ''}
        <div class="actions">
          <button type="submit" class="${v.action === 'purge' ? 'danger' : ''}">Yes, ${v.action}</button><a href="${uiPath(r, 'modules', v.module)}">Cancel</a>
        </div>
      </form>`,
  );
}

export function resultPage(ctx: PageContext, v: { title: string; ok: boolean; message: string; back: string }): Html {
  return layout(
    ctx,
    v.title,
    html`<h1>${v.title}</h1>
      <p class="notice${v.ok ? '' : ' bad'}">${v.message}</p>
      <p><a href="${v.back}">Back</a></p>`,
  );
}

export function messagePage(ctx: PageContext, title: string, message: string): Html {
  return layout(
    ctx,
    title,
    html`<h1>${title}</h1>
      <p>${message}</p>
      <p><a href="${ctx.root}">Home</a></p>`,
  );
}

// ---- formatting ----

/** A stored ISO time, shown to the minute (or second) in UTC; the exact value stays in the markup. */
export function timeOf(iso: string, seconds = false): Html {
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)(:\d\d)?/.exec(iso);
  if (!m) return html`${iso}`;
  return html`<time datetime="${iso}" title="${iso}">${m[1]} ${m[2]}${seconds ? (m[3] ?? '') : ''} UTC</time>`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i] as string}`;
}

export function formatRatio(r: number | null): string {
  return r === null ? '–' : `${(r * 100).toFixed(1)}%`;
}
