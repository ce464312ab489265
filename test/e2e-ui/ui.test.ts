// The web UI in a real headless Chromium, against a real gomodproxy filled by the real go command
// from a loopback upstream: search (instant with JavaScript, a plain form without), module pages,
// an administrator's purge through the confirmation page and its audit trail, a private module
// hidden from anonymous users, hostile go.mod text and query strings rendered inert, CSRF refusals,
// the keyboard path, and every page in light and dark at a phone's and a desktop's width checked
// by axe-core and saved as screenshots (test-results/ui, or GMP_UI_SCREENSHOTS).
import { cp, mkdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { escapePath } from '../../src/module/index.js';
import { basic, writeConfig, writeHtpasswd } from '../e2e-access/util.js';
import { gomodproxy, moduleZip } from '../e2e-sumdb/util.js';
import { startProxy, type ProxyProcess } from '../helpers/gomodproxy.js';
import { createGoEnv } from '../helpers/goenv.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';
import { axeProblems, cspViolations, launchBrowser, newContext, overflowPx, screenshot, watchedPage, type ContextOptions, type Scheme } from './browser.js';

const WIDGET = 'github.com/gmp-ui/widget';
const HELPER = 'github.com/gmp-ui/helper';
const PURGE = 'github.com/gmp-ui/purgeable';
const HOSTILE = 'github.com/gmp-ui/hostile';
const SECRET = 'github.com/gmp-ui-corp/secret';
/** "~" is the one character outside letters, digits, "-", "." and "_" that a module path may hold. */
const TILDE = 'example.com/gmp~ui/tilde';
const MISSING = 'github.com/gmp-ui/not-cached';
const DEV_PASSWORD = 'dev-password-for-the-ui';

// Attacker-controlled text where the go command lets it through: comments anywhere in a go.mod,
// the deprecation notice, a retraction's rationale.
const HOSTILE_GOMOD = `// Deprecated: use "><img src=x onerror=alert(2)> or <script>alert(3)</script> instead.
module ${HOSTILE}

go 1.21

// <script>alert(1)</script> '"><svg onload=alert(4)> </code></pre><iframe src="javascript:alert(5)"></iframe> \${alert(6)} {{7*7}}
require ${HELPER} v0.1.0 // <b onmouseover=alert(7)>x</b>

retract v1.0.0 // "><img src=x onerror=alert(8)> & <script>alert(9)</script>
`;

let world: World;
let upstream: TestUpstream;
let proxy: ProxyProcess;
let dataDir: string;
let auditFile: string;
let opsToken: string;
let browser: Browser;

const ui = (p = ''): string => `${proxy.url}/-/ui/${p}`;
const asAdmin = (): ContextOptions['credentials'] => ({ username: 'ops', password: opsToken });
const DEV = { username: 'dev', password: DEV_PASSWORD };

beforeAll(async () => {
  world = await buildModuleWorld({
    modules: [
      { path: HELPER, versions: [{ version: 'v0.1.0' }] },
      {
        path: WIDGET,
        versions: ['v1.0.0', 'v1.1.0', 'v1.2.0-rc.1'].map((version) => ({ version, goMod: `module ${WIDGET}\n\ngo 1.21\n\nrequire ${HELPER} v0.1.0\n` })),
      },
      { path: PURGE, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0' }] },
      { path: HOSTILE, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0', goMod: HOSTILE_GOMOD }] },
      { path: SECRET, versions: [{ version: 'v0.1.0', goMod: `module ${SECRET}\n\ngo 1.21\n\nrequire ${HELPER} v0.1.0\n` }] },
    ],
  });
  // The world is shared by the test process: the upstream serves a copy, with one module the go
  // command cannot take from git (no code host allows "~" in a repository name) written beside it.
  const root = await makeTempDir('ui-upstream');
  await cp(world.downloadDir, root, { recursive: true });
  const tildeDir = path.join(root, escapePath(TILDE), '@v');
  await mkdir(tildeDir, { recursive: true });
  const tildeMod = `module ${TILDE}\n\ngo 1.21\n`;
  await writeFile(path.join(tildeDir, 'list'), 'v1.0.0\n');
  await writeFile(path.join(tildeDir, 'v1.0.0.info'), JSON.stringify({ Version: 'v1.0.0', Time: '2024-02-03T04:05:06Z' }));
  await writeFile(path.join(tildeDir, 'v1.0.0.mod'), tildeMod);
  await writeFile(path.join(tildeDir, 'v1.0.0.zip'), await moduleZip(TILDE, 'v1.0.0', { 'go.mod': tildeMod, 'tilde.go': 'package tilde\n' }));
  upstream = await startTestUpstream({ root });

  const dir = await makeTempDir('ui');
  dataDir = path.join(dir, 'data');
  auditFile = path.join(dir, 'audit.jsonl');
  const htpasswd = path.join(dir, 'htpasswd');
  await writeHtpasswd(htpasswd, { dev: DEV_PASSWORD });
  opsToken = (await gomodproxy(['token', 'create', '--user', 'ops', '--data', dataDir])).stdout.trim();
  const config = await writeConfig({
    auth: { htpasswd, admin: ['user:ops'], audit: { enabled: true, file: auditFile } },
    routes: [{ match: 'github.com/gmp-ui-corp/*', private: true, sources: upstream.url, read: ['user:dev', 'user:ops'] }],
  });
  // The go command sends credentials over https only: the operator fills the private module with
  // prefetch (the server's own fetch path, in-process) before the server starts over the same data.
  const pre = await gomodproxy(['prefetch', '--config', config, '--data', dataDir, '--json', `${SECRET}@v0.1.0`]);
  expect(pre.code, pre.stderr).toBe(0);
  proxy = await startProxy({ upstream: upstream.url, dataDir, args: ['--config', config] });
  const go = await createGoEnv({ goproxy: proxy.url, goprivate: '' });
  const got = await go.modDownloadJson([
    `${HELPER}@v0.1.0`,
    `${WIDGET}@v1.0.0`,
    `${WIDGET}@v1.1.0`,
    `${WIDGET}@v1.2.0-rc.1`,
    `${PURGE}@v1.0.0`,
    `${PURGE}@v1.1.0`,
    `${HOSTILE}@v1.0.0`,
    `${HOSTILE}@v1.1.0`,
    `${TILDE}@v1.0.0`,
  ]);
  expect(got.map((r) => r.Error ?? null)).toEqual(got.map(() => null));
  browser = await launchBrowser();
});
afterAll(cleanupAll);

/** A page of a new context, signed in through the sign-in page when given credentials. */
async function open(o: ContextOptions = {}): Promise<Awaited<ReturnType<typeof watchedPage>>> {
  const ctx = await newContext(browser, o);
  const w = await watchedPage(ctx);
  if (o.credentials) {
    // The sign-in page challenges; the browser answers with the credentials and keeps them for /-/ui/.
    await w.page.goto(ui('signin'));
    await expect.poll(() => w.page.url()).toBe(ui());
    expect(await w.page.locator('header .who').textContent()).toContain(`Signed in as ${o.credentials.username}`);
  }
  return w;
}

async function texts(page: Page, selector: string): Promise<string[]> {
  return (await page.locator(selector).allTextContents()).map((t) => t.trim());
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

const artifact = (mod: string, version: string, ext: string): string => path.join(dataDir, escapePath(mod), '@v', `${version}.${ext}`);

describe('anyone', () => {
  test('a browser at the server’s root lands on the UI; search finds a module as one types, and by the form alone without JavaScript', async () => {
    const { page, errors } = await open();
    await page.goto(`${proxy.url}/`);
    expect(page.url()).toBe(ui());
    await expect.poll(() => page.locator('pre code').first().textContent()).toBe(`go env -w GOPROXY=${proxy.url}`);

    // Instant: the results arrive under the box while the page stays where it is.
    await page.evaluate('window.__stayed = true');
    await page.locator('#q').pressSequentially('gmp-ui/wid');
    // Answers to what was typed so far may show first; the last one stays.
    await expect.poll(() => texts(page, '#results tbody a')).toEqual([WIDGET]);
    expect(await page.evaluate('window.__stayed === true')).toBe(true);
    const hit = page.locator('#results a', { hasText: WIDGET });
    await expect.poll(() => page.url()).toBe(ui('search?q=gmp-ui%2Fwid'));
    await hit.click();
    await page.waitForURL(ui(`modules/${WIDGET}`));
    expect(errors).toEqual([]);

    // No script: the same box submits the form, and the results page links to the module.
    const plain = await open({ javaScript: false });
    await plain.page.goto(ui());
    await plain.page.locator('#q').fill('gmp');
    await plain.page.locator('#q').press('Enter');
    await plain.page.waitForURL(ui('search?q=gmp'));
    // None starts with it, so all contain it: in path order.
    expect(await texts(plain.page, '#results tbody td:first-child a')).toEqual([TILDE, HELPER, HOSTILE, PURGE, WIDGET]);
    await plain.page.locator('#results a', { hasText: TILDE }).click();
    await plain.page.waitForURL(ui(`modules/${TILDE}`));
    expect(await plain.page.locator('h1').textContent()).toBe(TILDE);
  });

  test('the module page: versions newest first with their times, the go.mod, requirements linked, dependents', async () => {
    const { page } = await open();
    await page.goto(ui(`modules/${WIDGET}`));
    expect(await page.locator('h1').textContent()).toBe(WIDGET);
    const rows = page.locator('table.versions tbody tr');
    expect(await texts(page, 'table.versions tbody td:first-child')).toEqual(['v1.2.0-rc.1', 'v1.1.0', 'v1.0.0']);
    for (const [i, v] of ['v1.2.0-rc.1', 'v1.1.0', 'v1.0.0'].entries()) {
      expect(await rows.nth(i).locator('time').getAttribute('datetime')).toBe(world.get(`${WIDGET}@${v}`).Info.Time);
      expect(await rows.nth(i).textContent()).toContain(upstream.url);
    }
    // The latest is the highest release, not the pre-release.
    expect(await page.locator('pre code', { hasText: 'go get' }).textContent()).toBe(`go get ${WIDGET}@v1.1.0`);
    expect(await page.locator('h2', { hasText: 'go.mod' }).textContent()).toBe('go.mod of v1.1.0');
    expect(await page.locator('pre.gomod code').textContent()).toBe(world.get(`${WIDGET}@v1.1.0`).modText);
    const req = page.locator('.requires a', { hasText: HELPER });
    expect(await req.getAttribute('href')).toBe(`/-/ui/modules/${HELPER}`);
    await req.click();
    await page.waitForURL(ui(`modules/${HELPER}`));
    // Who depends on it is read from every cached go.mod once, in the background.
    await expect.poll(async () => (await page.reload(), texts(page, '.dependents a')), { timeout: 30_000 }).toEqual([HOSTILE, WIDGET]);
  });
});

describe('an administrator', () => {
  test('signs in with a token, purges a version through the confirmation page: it is gone, and the audit page shows it', async () => {
    const { page } = await open({ credentials: asAdmin() });
    expect(await texts(page, 'nav[aria-label=Main] a')).toEqual(['Home', 'Modules', 'Operations', 'Audit log']);
    await page.goto(ui(`modules/${PURGE}`));
    expect(await texts(page, 'table.versions tbody td:first-child')).toEqual(['v1.1.0', 'v1.0.0']);
    await page
      .locator('table.versions tbody tr', { hasText: 'v1.0.0' })
      .getByRole('link', { name: `Purge ${PURGE}@v1.0.0` })
      .click();
    await page.waitForURL(/\/-\/ui\/admin\/confirm\?/);
    expect(await page.locator('h1').textContent()).toBe(`Purge ${PURGE}@v1.0.0?`);
    // Nothing happens before the confirmation.
    expect(await exists(artifact(PURGE, 'v1.0.0', 'info'))).toBe(true);
    await page.getByRole('button', { name: 'Yes, purge' }).click();
    await page.waitForURL(ui('admin/actions'));
    expect(await page.locator('h1').textContent()).toBe('Done');
    expect(await page.locator('.notice').textContent()).toContain(`${PURGE}@v1.0.0 was purged`);
    expect(await exists(artifact(PURGE, 'v1.0.0', 'info'))).toBe(false);
    expect(await exists(artifact(PURGE, 'v1.0.0', 'zip'))).toBe(false);
    await page.getByRole('link', { name: 'Back' }).click();
    await page.waitForURL(ui(`modules/${PURGE}`));
    expect(await texts(page, 'table.versions tbody td:first-child')).toEqual(['v1.1.0']);

    // The audit page, filtered by user through its own form.
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByLabel('User').fill('ops');
    await page.getByLabel('Module').fill('purgeable');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(ui('admin/audit?user=ops&module=purgeable&result='));
    const purged = page.locator('table.audit tbody tr', { hasText: 'v1.0.0' }).filter({ hasText: 'admin' });
    await expect.poll(async () => (await page.reload(), purged.count())).toBe(1);
    expect(await purged.locator('td').allTextContents()).toEqual([expect.any(String), 'ops', 'admin', `${PURGE} v1.0.0`, '200', '']);
    // Another user's filter leaves it out.
    await page.goto(ui('admin/audit?user=dev&module=purgeable'));
    expect(await page.locator('table.audit tbody tr', { hasText: 'v1.0.0' }).count()).toBe(0);
  });

  test('refreshes a module’s list through the confirmation page: the next list comes from the upstream again', async () => {
    const list = `/${HELPER}/@v/list`;
    const fetchList = async (): Promise<string> => {
      const res = await request(`${proxy.url}${list}`);
      expect(res.statusCode).toBe(200);
      return res.body.text();
    };
    expect(await fetchList()).toBe('v0.1.0\n');
    const asked = upstream.count(list);
    // Cached: a second list is not asked of the upstream.
    await fetchList();
    expect(upstream.count(list)).toBe(asked);

    const { page } = await open({ credentials: asAdmin() });
    await page.goto(ui(`modules/${HELPER}`));
    await page.getByRole('link', { name: 'Refresh list…' }).click();
    expect(await page.locator('h1').textContent()).toBe(`Invalidate ${HELPER}?`);
    await page.getByRole('button', { name: 'Yes, invalidate' }).click();
    expect(await page.locator('h1').textContent()).toBe('Done');
    expect(await page.locator('.notice').textContent()).toBe(`The cached list and @latest of ${HELPER} were dropped everywhere.`);
    await fetchList();
    expect(upstream.count(list)).toBe(asked + 1);
    await page.goto(ui(`admin/audit?user=ops&module=${encodeURIComponent(HELPER)}`));
    await expect
      .poll(async () => (await page.reload(), page.locator('table.audit tbody tr').filter({ hasText: 'admin' }).filter({ hasText: '200' }).count()))
      .toBe(1);
  });

  test('actions refuse a form without the CSRF token, with a wrong one, or from another site; nothing is purged', async () => {
    const { page } = await open({ credentials: asAdmin() });
    await page.goto(ui(`admin/confirm?action=purge&module=${WIDGET}&version=v1.0.0`));
    const csrf = (await page.locator('input[name=csrf]').getAttribute('value')) as string;
    expect(csrf).toMatch(/^[\w-]{20,}$/);
    const post = async (fields: Record<string, string>, headers: Record<string, string> = {}): Promise<number> => {
      const res = await request(ui('admin/actions'), {
        method: 'POST',
        headers: { authorization: basic('ops', opsToken), 'content-type': 'application/x-www-form-urlencoded', ...headers },
        body: new URLSearchParams(fields).toString(),
      });
      await res.body.dump();
      return res.statusCode;
    };
    const purge = { action: 'purge', module: WIDGET, version: 'v1.0.0' };
    expect(await post(purge)).toBe(403);
    expect(await post({ ...purge, csrf: `${csrf.slice(0, -2)}xx` })).toBe(403);
    expect(await post({ ...purge, csrf: 'not-a-token' })).toBe(403);
    expect(await post({ ...purge, csrf }, { origin: 'http://attacker.test' })).toBe(403);
    expect(await post({ ...purge, csrf }, { 'sec-fetch-site': 'cross-site' })).toBe(403);
    // Another user's token (the reader's) is not the administrator's.
    expect(await post({ ...purge, csrf }, { authorization: basic('dev', DEV_PASSWORD) })).toBe(403);

    // A page on another site that submits the form in the administrator's signed-in browser,
    // even holding a valid token: refused by where it came from.
    await page.route('http://attacker.test/**', (route) =>
      route.fulfill({
        contentType: 'text/html',
        body: `<form id="f" method="post" action="${ui('admin/actions')}">${Object.entries({ ...purge, csrf })
          .map(([k, v]) => `<input type="hidden" name="${k}" value="${v}">`)
          .join('')}</form><script>document.getElementById('f').submit()</script>`,
      }),
    );
    const answer = page.waitForResponse((r) => r.url() === ui('admin/actions'));
    await page.goto('http://attacker.test/win-a-prize');
    expect((await answer).status()).toBe(403);
    expect(await page.locator('h1').textContent()).toBe('Not allowed');

    expect(await exists(artifact(WIDGET, 'v1.0.0', 'info'))).toBe(true);
    await page.goto(ui(`modules/${WIDGET}`));
    expect(await texts(page, 'table.versions tbody td:first-child')).toEqual(['v1.2.0-rc.1', 'v1.1.0', 'v1.0.0']);
  });
});

describe('private modules', () => {
  test('are invisible to an anonymous user, in search and on their page (a 404 like a missing module), and visible to their reader', async () => {
    const anon = (await open()).page;
    await anon.goto(ui('search?q=gmp-ui-corp'));
    expect(await anon.locator('#results').textContent()).toContain('No cached module matches');
    await anon.goto(ui('search?q='));
    expect(await texts(anon, '#results tbody td:first-child a')).not.toContain(SECRET);
    const answer = async (mod: string): Promise<{ status: number | undefined; page: string }> => {
      const res = await anon.goto(ui(`modules/${mod}`));
      return { status: res?.status(), page: (await anon.content()).replaceAll(mod, 'M') };
    };
    const hidden = await answer(SECRET);
    expect(hidden.status).toBe(404);
    expect(hidden).toEqual(await answer(MISSING));
    await anon.goto(ui());
    expect(await anon.locator('main').textContent()).not.toContain('gmp-ui-corp');
    // Not even counted: five public modules, and the JSON the live counters read says the same.
    expect(await anon.locator('[data-stat=modules]').textContent()).toBe('5');
    const versions = await anon.locator('[data-stat=versions]').textContent();
    expect(JSON.parse(await (await anon.request.get(ui('stats.json'))).text())).toMatchObject({ modules: '5', versions });
    await anon.goto(ui(`modules/${HELPER}`));
    await expect.poll(async () => (await anon.reload(), texts(anon, '.dependents a')), { timeout: 30_000 }).toEqual([HOSTILE, WIDGET]);

    const dev = (await open({ credentials: DEV })).page;
    expect(await dev.locator('[data-stat=modules]').textContent()).toBe('6');
    // Its reader is told to keep it from the checksum database.
    expect(await dev.locator('pre code').first().textContent()).toBe(`go env -w GOPROXY=${proxy.url}\ngo env -w GONOSUMDB=github.com/gmp-ui-corp/*`);
    await dev.goto(ui('search?q=gmp-ui-corp'));
    await dev.locator('#results a', { hasText: SECRET }).click();
    await dev.waitForURL(ui(`modules/${SECRET}`));
    expect(await dev.locator('h1').textContent()).toBe(SECRET);
    expect(await dev.locator('dl.facts').textContent()).toContain('private');
    await dev.goto(ui(`modules/${HELPER}`));
    expect(await texts(dev, '.dependents a')).toEqual([SECRET, HOSTILE, WIDGET]);
    // A reader is no administrator.
    const ops = await dev.goto(ui('admin'));
    expect(ops?.status()).toBe(403);
  });
});

describe('hostile strings', () => {
  test('go.mod text, a deprecation, a retraction rationale and query strings render as text and run nothing', async () => {
    const w = await open({ credentials: asAdmin() });
    const { page } = w;
    const inert = async (): Promise<void> => {
      expect(await page.locator('script').count()).toBe(1);
      expect(await page.locator('img, iframe, object, embed, svg, b').count()).toBe(0);
      expect(
        await page.evaluate("[...document.querySelectorAll('*')].flatMap((e) => [...e.attributes].map((a) => a.name)).filter((n) => n.startsWith('on'))"),
      ).toEqual([]);
      expect(await cspViolations(page)).toEqual([]);
    };

    await page.goto(ui(`modules/${HOSTILE}`));
    expect(await page.locator('pre.gomod code').textContent()).toBe(HOSTILE_GOMOD);
    expect(await page.locator('.notice', { hasText: 'Deprecated' }).textContent()).toBe(
      'Deprecated: use "><img src=x onerror=alert(2)> or <script>alert(3)</script> instead.',
    );
    expect(await page.locator('table.versions tbody tr', { hasText: 'v1.0.0' }).textContent()).toContain(
      'retracted "><img src=x onerror=alert(8)> & <script>alert(9)</script>',
    );
    await inert();
    // Hover what would carry a handler, in case one slipped through.
    await page.locator('pre.gomod').hover();

    const q = `<script>alert(10)</script>"><img src=x onerror=alert(11)>'\``;
    await page.goto(ui(`search?q=${encodeURIComponent(q)}`));
    expect(await page.locator('#q').inputValue()).toBe(q);
    expect(await page.locator('#results code').textContent()).toBe(q);
    expect(await page.title()).toBe(`Modules matching ${q} · gomodproxy`);
    await inert();
    // Instant search puts the answer into the page as HTML: it must come escaped too.
    await page.locator('#q').fill('');
    await page.locator('#q').pressSequentially('"><img src=x onerror=alert(12)>');
    await expect.poll(() => page.locator('#results code').textContent()).toBe('"><img src=x onerror=alert(12)>');
    await inert();

    await page.goto(ui(`admin/confirm?action=purge&module=${HOSTILE}&version=${encodeURIComponent(q)}`));
    expect(await page.locator('h1').textContent()).toBe(`Purge ${HOSTILE}@${q}?`);
    expect(await page.locator('input[name=version]').getAttribute('value')).toBe(q);
    await inert();
    await page.goto(ui(`admin/audit?user=${encodeURIComponent(q)}&module=${encodeURIComponent(q)}`));
    expect(await page.getByLabel('User').inputValue()).toBe(q);
    await inert();
    await page.goto(ui(`modules/${encodeURIComponent(q)}`));
    await inert();

    expect(w.dialogs).toEqual([]);
    expect(w.errors).toEqual([]);
  });
});

describe('keyboard', () => {
  test('the first Tab reaches the skip link, which leads past the header; Tab reaches the search box', async () => {
    const { page } = await open();
    await page.goto(ui());
    await page.keyboard.press('Tab');
    const skip = page.locator('a.skip');
    expect(await page.evaluate('document.activeElement.textContent')).toBe('Skip to content');
    const box = await skip.boundingBox();
    expect(box !== null && box.x >= 0 && box.y >= 0).toBe(true);
    await page.keyboard.press('Enter');
    expect(page.url()).toBe(`${ui()}#main`);
    await page.keyboard.press('Tab');
    expect(await page.evaluate("document.activeElement.closest('main') !== null")).toBe(true);
    expect(await page.evaluate('document.activeElement.id')).toBe('q');

    // From the top again, by Tab alone, through the header.
    await page.goto(ui());
    let reached = false;
    for (let i = 0; i < 12 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = (await page.evaluate('document.activeElement.id')) === 'q';
    }
    expect(reached).toBe(true);
    await page.keyboard.type(WIDGET);
    await page.keyboard.press('Enter');
    await page.waitForURL(ui(`search?q=${encodeURIComponent(WIDGET)}`));
    expect(await texts(page, '#results tbody a')).toEqual([WIDGET]);
  });
});

describe('every page', () => {
  const PAGES: [name: string, path: string][] = [
    ['home', ''],
    ['search', 'search?q=gmp-ui'],
    ['module', `modules/${WIDGET}`],
    ['operations', 'admin'],
    ['audit', 'admin/audit?user=ops'],
  ];

  test('in light and dark, at 390 and 1440 px: no serious accessibility violation, nothing wider than the window; screenshots', async () => {
    const { page } = await open({ credentials: asAdmin() });
    const problems: string[] = [];
    for (const scheme of ['light', 'dark'] as Scheme[]) {
      await page.emulateMedia({ colorScheme: scheme });
      for (const width of [1440, 390]) {
        await page.setViewportSize({ width, height: 900 });
        for (const [name, p] of PAGES) {
          const res = await page.goto(ui(p));
          expect(res?.status(), name).toBe(200);
          for (const x of await axeProblems(page)) problems.push(`${name} ${width} ${scheme}: ${x}`);
          const over = await overflowPx(page);
          if (over > 0) problems.push(`${name} ${width} ${scheme}: ${over} px wider than the window`);
          await screenshot(page, `${name}-${width}-${scheme}`);
        }
      }
    }
    // The pages between: the confirmation, a result, a 404 and the hostile module.
    for (const p of [`admin/confirm?action=invalidate&module=${WIDGET}`, `modules/${MISSING}`, `modules/${HOSTILE}`]) {
      await page.goto(ui(p));
      for (const x of await axeProblems(page)) problems.push(`${p}: ${x}`);
    }
    expect(problems).toEqual([]);
  });
});
