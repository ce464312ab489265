// `gomodproxy token create|list|revoke`: API tokens for the go command (put one in .netrc as
// the password, or send it as a Bearer token). A token is printed once, on standard output
// alone, so `TOKEN=$(gomodproxy token create --user ci)` captures it; everything else goes to
// standard error. The store is the data folder's state/tokens.json, shared with running servers,
// which notice changes on their own.
import { Command, InvalidArgumentError, Option } from 'commander';
// Straight to the token store, not the access door: a CLI command need not load LDAP, JOSE and bcrypt.
import { TokenStore, TokenStoreError, tokenIdOf, tokensFile, type TokenRecord } from '../access/tokens.js';
import { formatDuration, parseDuration } from '../config/units.js';

interface Common {
  config?: string;
  data?: string;
}

/** The configuration (zod, YAML) is loaded only when a token command runs, not to list the commands. */
async function dataDir(opts: Common): Promise<string> {
  const { loadConfig } = await import('../config/load.js');
  return loadConfig({ file: opts.config, flags: { data: opts.data } }).data;
}

async function openStore(opts: Common): Promise<TokenStore> {
  // No polling: a command reads the file once and exits.
  return TokenStore.open(tokensFile(await dataDir(opts)), { pollMs: 0 });
}

// 'never' rather than null: commander does not pass a parser's null through to the options.
function expiry(value: string): number | 'never' {
  if (value === 'never') return 'never';
  let ms: number;
  try {
    ms = parseDuration(value);
  } catch (err) {
    throw new InvalidArgumentError(`${(err as Error).message}, or never`);
  }
  if (ms <= 0) throw new InvalidArgumentError('expected a positive duration such as 30d, or never');
  return ms;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function statusOf(r: TokenRecord, now: number): string {
  if (r.revoked) return `revoked ${r.revoked.slice(0, 10)}`;
  if (r.expires !== null && Date.parse(r.expires) <= now) return 'expired';
  return 'active';
}

/** Store problems (a locked or corrupt file) are the operator's to fix: one line, no stack. */
function guarded<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      if (!(err instanceof TokenStoreError)) throw err;
      process.stderr.write(`gomodproxy: ${err.message}\n`);
      process.exitCode = 1;
    }
  };
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n');
}

export function tokenCommand(): Command {
  const token = new Command('token').description('Manage API tokens (stored hashed in <data>/state/tokens.json; running servers pick up changes)');

  const common = (c: Command): Command =>
    c.option('-c, --config <file>', 'YAML config file (for its data folder)').option('-d, --data <dir>', 'data folder (default ./data; env GOMODPROXY_DATA)');

  common(
    token
      .command('create')
      .description('Create a token for a user and print it once; use it as the .netrc password or as "Authorization: Bearer <token>"')
      .requiredOption('-u, --user <name>', 'the user the token acts as')
      .addOption(
        new Option('-s, --scope <scope>', 'a scope the token carries, matched by scope:<name> rules (repeatable)').argParser(collect).default([], 'none'),
      )
      .addOption(new Option('-e, --expires <duration>', 'lifetime such as 12h, 30d, 365d, or never').argParser(expiry).default(90 * 86_400_000, '90d'))
      .option('--description <text>', 'a note shown by token list (e.g. which CI job uses it)'),
  ).action(
    guarded(async (opts: Common & { user: string; scope: string[]; expires: number | 'never'; description?: string }) => {
      const store = await openStore(opts);
      const { token: value, record } = await store.create({
        user: opts.user,
        scopes: opts.scope,
        expiresInMs: opts.expires === 'never' ? null : opts.expires,
        description: opts.description,
      });
      store.close();
      const scopes = record.scopes.length > 0 ? record.scopes.join(',') : 'none';
      const until = record.expires === null ? 'never expires' : `expires ${record.expires} (${formatDuration(opts.expires as number)})`;
      process.stderr.write(`created token ${record.id} for user ${record.user} (scopes: ${scopes}; ${until}).\nIt is shown only now; store it safely:\n`);
      process.stdout.write(`${value}\n`);
    }),
  );

  common(
    token
      .command('list')
      .description('List tokens: id, user, scopes, created, expiry and status (never the secrets, which are not kept)')
      .option('--json', 'print JSON records instead of a table'),
  ).action(
    guarded(async (opts: Common & { json?: boolean }) => {
      const store = await openStore(opts);
      const records = store.list().sort((a, b) => a.created.localeCompare(b.created));
      store.close();
      if (opts.json) {
        // The stored hash is left out too: it is of no use to a reader and need not travel.
        const shown = records.map(({ hash: _hash, ...r }) => r);
        process.stdout.write(`${JSON.stringify(shown, null, 2)}\n`);
        return;
      }
      if (records.length === 0) {
        process.stderr.write('no tokens; create one with gomodproxy token create --user NAME\n');
        return;
      }
      const now = Date.now();
      const rows = [['ID', 'USER', 'SCOPES', 'CREATED', 'EXPIRES', 'STATUS', 'DESCRIPTION']];
      for (const r of records) {
        rows.push([
          r.id,
          r.user,
          r.scopes.join(',') || '-',
          r.created.slice(0, 19) + 'Z',
          r.expires === null ? 'never' : r.expires.slice(0, 19) + 'Z',
          statusOf(r, now),
          r.description ?? '',
        ]);
      }
      process.stdout.write(`${table(rows)}\n`);
    }),
  );

  common(
    token
      .command('revoke')
      .description('Revoke a token by its id (as shown by token list); servers refuse it within seconds')
      .argument('<id>', 'token id, or the whole token'),
  ).action(
    guarded(async (idOrToken: string, opts: Common) => {
      const id = tokenIdOf(idOrToken);
      if (id === null) {
        process.stderr.write('gomodproxy: expected a token id as shown by gomodproxy token list (12 letters and digits)\n');
        process.exitCode = 2;
        return;
      }
      const store = await openStore(opts);
      const r = await store.revoke(id);
      store.close();
      if (!r) {
        process.stderr.write(`gomodproxy: no token with id ${id}; see gomodproxy token list\n`);
        process.exitCode = 1;
        return;
      }
      process.stderr.write(`revoked token ${r.id} of user ${r.user}\n`);
    }),
  );

  return token;
}
