// Headless Chromium for the web UI's tests (Debian's chromium, driven by playwright-core), and the
// checks a page must pass whatever it shows: axe-core finds no serious or critical accessibility
// violation, nothing is wider than the window, and nothing tried to run against the policy.
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';
import { registerCleanup } from '../helpers/tmp.js';

/** GMP_CHROMIUM overrides it (scripts/test-ci.sh installs Debian's package there). */
export const CHROMIUM = process.env.GMP_CHROMIUM ?? '/usr/bin/chromium';

// The background-networking flags matter here: without them Chromium calls home at start, and
// on a closed network its connections are refused, which slows or breaks the run.
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** One browser for the file; playwright gives each launch a fresh profile of its own in a temp folder. */
export async function launchBrowser(): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 60_000 });
  registerCleanup(() => browser.close());
  return browser;
}

export type Scheme = 'light' | 'dark';

export interface ContextOptions {
  width?: number;
  scheme?: Scheme;
  javaScript?: boolean;
  /** Answered when the server challenges (the sign-in page does), as a person types them in the browser's prompt. */
  credentials?: { username: string; password: string };
}

/** A context (a fresh cookie jar and auth cache); every page of it records what must not happen. */
export async function newContext(browser: Browser, o: ContextOptions = {}): Promise<BrowserContext> {
  const opts: BrowserContextOptions = {
    viewport: { width: o.width ?? 1440, height: 900 },
    colorScheme: o.scheme ?? 'light',
    javaScriptEnabled: o.javaScript ?? true,
    ...(o.credentials ? { httpCredentials: o.credentials } : {}),
  };
  const ctx = await browser.newContext(opts);
  // Any script the policy refused means markup got through that should not have: counted per page.
  await ctx.addInitScript(
    "window.__violations = []; document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));",
  );
  registerCleanup(() => ctx.close().catch(() => undefined));
  return ctx;
}

export interface Watched {
  page: Page;
  dialogs: string[];
  errors: string[];
}

/** A page whose dialogs (alert, confirm) and script errors are recorded instead of blocking it. */
export async function watchedPage(ctx: BrowserContext): Promise<Watched> {
  const page = await ctx.newPage();
  const w: Watched = { page, dialogs: [], errors: [] };
  page.on('dialog', (d) => {
    w.dialogs.push(`${d.type()}: ${d.message()}`);
    void d.dismiss().catch(() => undefined);
  });
  page.on('pageerror', (e) => w.errors.push(e.message));
  return w;
}

/** CSP violations the page has seen since it loaded. */
export async function cspViolations(page: Page): Promise<string[]> {
  return (await page.evaluate('window.__violations ?? []')) as string[];
}

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[]; failureSummary?: string }[];
}

/**
 * axe-core's violations of serious or critical impact, one line each. It is evaluated through the
 * debugging protocol rather than added as a script tag, so the page's own policy stays in force.
 */
export async function axeProblems(page: Page): Promise<string[]> {
  await page.evaluate(`${AXE_SOURCE};0`);
  const violations = (await page.evaluate(
    "axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target, failureSummary: n.failureSummary })) })))",
  )) as AxeViolation[];
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => `${n.target.join(' ')} [${n.failureSummary ?? ''}]`).join('; ')}`);
}

/** How much wider than the window the page is (0: it fits; a 390 px phone must not scroll sideways). */
export async function overflowPx(page: Page): Promise<number> {
  return (await page.evaluate('document.documentElement.scrollWidth - window.innerWidth')) as number;
}

/** GMP_UI_SCREENSHOTS names the folder; test-results/ui (ignored by git) otherwise. */
export function screenshotDir(): string {
  return process.env.GMP_UI_SCREENSHOTS ?? path.resolve(import.meta.dirname, '../../test-results/ui');
}

export async function screenshot(page: Page, name: string): Promise<string> {
  const dir = screenshotDir();
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
