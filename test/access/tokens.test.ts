// API tokens through the real CLI (`node dist/cli/main.js token ...`; run `npm run build` first):
// created once and printed once, hashed at rest, listed without secrets, revoked, expiring, and
// shared between processes: a store in this process sees what the CLI processes write.
import { existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthError, Authenticator, TokenStore, looksLikeToken, tokenIdOf, tokensFile, type Principal } from '../../src/access/index.js';
import { cliEntry } from '../helpers/gomodproxy.js';
import { run, scrubbedEnv, type RunResult } from '../helpers/proc.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { SecretWatch } from './support/secrets.js';

const watch = new SecretWatch();
let data: string;
let cwd: string;

/** Runs the CLI; its stderr always, and its stdout unless it is the one-time token, are recorded as outputs. */
async function cli(args: string[], opts: { printsToken?: boolean } = {}): Promise<RunResult> {
  const r = await run(process.execPath, [cliEntry, 'token', ...args, '--data', data], { cwd, env: scrubbedEnv(), timeoutMs: 30_000 });
  watch.output(`cli ${args[0]} stderr`, r.stderr);
  if (!opts.printsToken) watch.output(`cli ${args[0]} stdout`, r.stdout);
  return r;
}

async function create(...args: string[]): Promise<{ token: string; id: string; stderr: string }> {
  const r = await cli(['create', ...args], { printsToken: true });
  expect(r.code, r.stderr).toBe(0);
  const token = watch.secret(r.stdout.trim());
  expect(looksLikeToken(token)).toBe(true);
  return { token, id: tokenIdOf(token) as string, stderr: r.stderr };
}

/** The AuthError of an authentication, thrown synchronously (a cached refusal) or asynchronously. */
async function refusal(attempt: () => Principal | Promise<Principal>): Promise<AuthError> {
  try {
    await attempt();
  } catch (err) {
    expect(err).toBeInstanceOf(AuthError);
    watch.error('token refusal', err);
    return err as AuthError;
  }
  throw new Error('expected an AuthError');
}

beforeAll(async () => {
  if (!existsSync(cliEntry)) throw new Error(`${cliEntry} is missing: run npm run build first`);
  cwd = await makeTempDir('tokens-cwd');
  data = path.join(await makeTempDir('tokens-data'), 'data');
});
afterAll(cleanupAll);

describe('the token command', () => {
  it('create prints the token once on stdout alone; the file keeps only a hash', async () => {
    const { token, id, stderr } = await create(
      '--user',
      'ci-bot',
      '--scope',
      'modules:read',
      '--scope',
      'private',
      '--expires',
      '30d',
      '--description',
      'nightly build',
    );
    expect(token).toMatch(/^gmp_[0-9a-z]{12}_[0-9A-Za-z]{43}$/);
    expect(stderr).toContain(`created token ${id} for user ci-bot (scopes: modules:read,private; expires `);
    expect(stderr).toContain('(30d)');
    const file = tokensFile(data);
    const text = await readFile(file, 'utf8');
    watch.output('tokens.json', text);
    const secret = token.split('_')[2] as string;
    watch.secret(secret);
    expect(text).toContain(id);
    expect(text).not.toContain(secret);
    const rec = (JSON.parse(text) as { tokens: Array<Record<string, unknown>> }).tokens.find((t) => t.id === id);
    expect(rec).toMatchObject({
      user: 'ci-bot',
      scopes: ['modules:read', 'private'],
      description: 'nightly build',
      hash: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
    });
    const days = (Date.parse(rec?.expires as string) - Date.parse(rec?.created as string)) / 86_400_000;
    expect(days).toBe(30);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('list shows tokens without secrets or hashes; --json too', async () => {
    const { id } = await create('--user', 'alice', '--expires', 'never');
    const table = await cli(['list']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^ID\s+USER\s+SCOPES\s+CREATED\s+EXPIRES\s+STATUS/);
    expect(table.stdout).toMatch(new RegExp(`${id}\\s+alice\\s+-\\s+\\S+\\s+never\\s+active`));
    const json = await cli(['list', '--json']);
    const list = JSON.parse(json.stdout) as Array<Record<string, unknown>>;
    expect(list.find((t) => t.id === id)).toMatchObject({ user: 'alice', expires: null });
    expect(json.stdout).not.toContain('sha256:');
  });

  it('revoke by id or by the whole token; an unknown id fails clearly', async () => {
    // Made in this process, revoked by the CLI: the same file serves both.
    const store = await TokenStore.open(tokensFile(data), { pollMs: 0 });
    const a = await store.create({ user: 'temp', expiresInMs: 60_000 });
    const b = await store.create({ user: 'temp2', expiresInMs: 60_000 });
    watch.secret(a.token);
    watch.secret(b.token);
    const r = await cli(['revoke', a.record.id]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(`revoked token ${a.record.id} of user temp\n`);
    const byToken = await cli(['revoke', b.token]);
    expect(byToken.code).toBe(0);
    expect(await store.reloadIfChanged()).toBe(true);
    expect(typeof store.get(a.record.id)?.revoked).toBe('string');
    expect(typeof store.get(b.record.id)?.revoked).toBe('string');
    store.close();
    const missing = await cli(['revoke', 'zzzzzzzzzzzz']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no token with id zzzzzzzzzzzz');
    const garbage = await cli(['revoke', watch.secret('not-a-token-secret-Value')]);
    expect(garbage.code).toBe(2);
  });

  it('rejects a bad --expires and a missing --user with a clear message', async () => {
    const bad = await cli(['create', '--user', 'x', '--expires', 'soon']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('expected a duration like');
    const noUser = await cli(['create']);
    expect(noUser.code).not.toBe(0);
    expect(noUser.stderr).toContain("required option '-u, --user <name>'");
  });

  it('two CLI processes creating at once both land (the file is locked and replaced atomically)', async () => {
    const before = (await TokenStore.open(tokensFile(data), { pollMs: 0 })).list();
    const made = await Promise.all(Array.from({ length: 3 }, (_, i) => create('--user', `parallel-${i}`)));
    const after = (await TokenStore.open(tokensFile(data), { pollMs: 0 })).list();
    expect(after.length).toBe(before.length + 3);
    for (const m of made) expect(after.some((t) => t.id === m.id)).toBe(true);
  });
});

describe('a running server sharing the data folder', () => {
  it('accepts a token the CLI just made (Bearer, Basic password with any user, token as user) and refuses it once revoked', async () => {
    const made: { auth?: Authenticator } = {};
    const store = await TokenStore.open(tokensFile(data), { pollMs: 25, onReload: () => made.auth?.clearCache('token') });
    const auth = new Authenticator({ tokens: store, cacheTtlMs: 60_000 });
    made.auth = auth;
    try {
      const { token, id } = await create('--user', 'ci-bot', '--scope', 'private');
      // Unknown ids are looked up in the file again at once: no wait for the poll.
      const p = await auth.authenticate({ authorization: `Bearer ${token}` });
      expect(p).toEqual({ name: 'ci-bot', groups: [], scopes: ['private'], method: 'token' });
      expect((await auth.authenticate({ authorization: watch.basic('whoever', token) })).name).toBe('ci-bot');
      expect((await auth.authenticate({ authorization: `Basic ${Buffer.from(`${token}:x`).toString('base64')}` })).name).toBe('ci-bot');
      watch.secret(Buffer.from(`${token}:x`).toString('base64'));
      // Cached: synchronous.
      expect((auth.authenticate({ authorization: `Bearer ${token}` }) as Principal).method).toBe('token');

      expect((await cli(['revoke', id])).code).toBe(0);
      await expect
        .poll(
          () => {
            try {
              const r = auth.authenticate({ authorization: `Bearer ${token}` });
              return r instanceof Promise
                ? r.then(
                    () => 'accepted',
                    (e: AuthError) => e.reason,
                  )
                : 'accepted';
            } catch (e) {
              return (e as AuthError).reason;
            }
          },
          { timeout: 60_000, interval: 25 },
        )
        .toBe('token-revoked');
      const err = await refusal(() => auth.authenticate({ authorization: `Bearer ${token}` }));
      expect(err.message).toBe(`API token ${id} was revoked; create a new one with gomodproxy token create`);
    } finally {
      store.close();
    }
  });
});

describe('the store', () => {
  it('refuses expired tokens and wrong secrets, and caches no success past expiry', async () => {
    const dir = await makeTempDir('tokens-store');
    const store = await TokenStore.open(tokensFile(dir), { pollMs: 0 });
    const day = 86_400_000;
    const old = await store.create({ user: 'old', expiresInMs: day, now: Date.now() - 2 * day });
    watch.secret(old.token);
    expect(await store.verify(old.token)).toEqual({ ok: false, reason: 'expired', id: old.record.id });
    const live = await store.create({ user: 'live', scopes: ['a'], expiresInMs: 10_000 });
    watch.secret(live.token);
    const forged = watch.secret(`${live.token.slice(0, 17)}${'A'.repeat(43)}`);
    expect(await store.verify(forged)).toEqual({ ok: false, reason: 'mismatch', id: live.record.id });
    expect(await store.verify('gmp_short')).toEqual({ ok: false, reason: 'malformed' });

    let offset = 0;
    const auth = new Authenticator({ tokens: store, cacheTtlMs: 600_000, now: () => Date.now() + offset });
    expect((await auth.authenticate({ authorization: `Bearer ${live.token}` })).name).toBe('live');
    offset = 11_000;
    const err = await refusal(() => auth.authenticate({ authorization: `Bearer ${live.token}` }));
    expect(err.reason).toBe('token-expired');
    expect((await refusal(() => auth.authenticate({ authorization: `Bearer ${old.token}` }))).message).toContain('has expired');
    expect((await refusal(() => auth.authenticate({ authorization: `Bearer ${forged}` }))).message).toBe(
      'unknown or invalid API token; check the token, or create one with gomodproxy token create',
    );
    store.close();
  });

  it('a corrupt file is an error naming it; the running store keeps its tokens', async () => {
    const dir = await makeTempDir('tokens-corrupt');
    const errors: unknown[] = [];
    const store = await TokenStore.open(tokensFile(dir), { pollMs: 20, onError: (e) => errors.push(e) });
    const t = await store.create({ user: 'u', expiresInMs: null });
    watch.secret(t.token);
    await writeFile(tokensFile(dir), '{ not json');
    await expect.poll(() => errors.length, { timeout: 60_000, interval: 20 }).toBe(1);
    watch.error('corrupt tokens', errors[0]);
    expect(String(errors[0])).toContain(tokensFile(dir));
    expect((await store.verify(t.token)).ok).toBe(true);
    store.close();
    await expect(TokenStore.open(tokensFile(dir))).rejects.toThrow(/is not valid JSON/);
  });
});

it('leaks no secret into any output', () => {
  expect(watch.outputCount).toBeGreaterThan(10);
  watch.assertClean();
});
