// API tokens: `gmp_<id>_<secret>`, made by `gomodproxy token create` and shown once. Only a
// SHA-256 of the secret is kept, in <data>/state/tokens.json. A fast hash is enough here, unlike
// for passwords: the secret is 256 bits from the OS's CSPRNG, so there is no dictionary to try
// and no amount of hashing speed makes guessing it feasible; a slow KDF (bcrypt, scrypt) only
// protects low-entropy secrets, and would cost every uncached request milliseconds of CPU.
// Every process sharing the data folder reads the file and notices when another one changes it.
import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { FileLocks, type HeldLock } from '../cluster/filelock.js';
import { FileWatcher } from './watch.js';

export const TOKEN_PREFIX = 'gmp_';
const ID_LENGTH = 12;
const SECRET_LENGTH = 43; // base62: 43 characters carry 256 bits
const ID_ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';
const SECRET_ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const TOKEN_SHAPE = /^gmp_([0-9a-z]{12})_([0-9A-Za-z]{43})$/;

/** One token as stored: everything but the secret. */
export interface TokenRecord {
  id: string;
  user: string;
  scopes: string[];
  /** ISO 8601. */
  created: string;
  /** ISO 8601, or null for a token that does not expire. */
  expires: string | null;
  /** ISO 8601 when revoked; a revoked token is kept so its use can be reported as such. */
  revoked?: string;
  description?: string;
  /** "sha256:<hex>" of the secret part. */
  hash: string;
}

export interface CreatedToken {
  /** The whole token: shown once, never stored. */
  token: string;
  record: TokenRecord;
}

export type TokenVerdict =
  | { ok: true; record: TokenRecord; expiresAt: number | null }
  | { ok: false; reason: 'malformed' | 'unknown' | 'mismatch' | 'revoked' | 'expired'; id?: string };

export class TokenStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenStoreError';
  }
}

/** Where tokens live in a data folder. */
export function tokensFile(dataDir: string): string {
  return path.join(dataDir, 'state', 'tokens.json');
}

/** True when a string has the shape of one of our tokens (decides which check a Basic password gets). */
export function looksLikeToken(value: string): boolean {
  return value.startsWith(TOKEN_PREFIX) && TOKEN_SHAPE.test(value);
}

/** The id of a token, or of an id given on its own (for `token revoke`). */
export function tokenIdOf(value: string): string | null {
  const m = TOKEN_SHAPE.exec(value);
  if (m) return m[1] as string;
  return new RegExp(`^[0-9a-z]{${ID_LENGTH}}$`).test(value) ? value : null;
}

function randomString(alphabet: string, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)];
  return out;
}

function hashSecret(secret: string): string {
  return `sha256:${createHash('sha256').update(secret).digest('hex')}`;
}

function parseFile(text: string, file: string): TokenRecord[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new TokenStoreError(`token file ${file} is not valid JSON (${(err as Error).message}); restore it from a backup or remove it and create new tokens`);
  }
  const tokens = (doc as { tokens?: unknown })?.tokens;
  if (!Array.isArray(tokens)) throw new TokenStoreError(`token file ${file} has no "tokens" list; restore it from a backup or remove it`);
  return tokens.map((t: unknown, i) => {
    const r = t as Partial<TokenRecord>;
    const valid =
      typeof r?.id === 'string' &&
      typeof r.user === 'string' &&
      Array.isArray(r.scopes) &&
      r.scopes.every((s) => typeof s === 'string') &&
      typeof r.created === 'string' &&
      (r.expires === null || typeof r.expires === 'string') &&
      typeof r.hash === 'string' &&
      /^sha256:[0-9a-f]{64}$/.test(r.hash);
    if (!valid) throw new TokenStoreError(`token file ${file}: entry ${i} is malformed; revoke or remove it`);
    return r as TokenRecord;
  });
}

export interface TokenStoreOptions {
  /** How often to look for changes made by other processes; 0: only on an unknown id. Default 2 s. */
  pollMs?: number;
  onReload?: () => void;
  onError?: (err: unknown) => void;
}

export interface CreateTokenInput {
  user: string;
  scopes?: string[];
  /** Lifetime in ms; null for no expiry. */
  expiresInMs: number | null;
  description?: string;
  now?: number;
}

export class TokenStore {
  private byId = new Map<string, TokenRecord>();
  private readonly watcher: FileWatcher<TokenRecord[]>;
  private readonly locks = new FileLocks(10_000);

  private constructor(
    readonly file: string,
    private readonly opts: TokenStoreOptions,
  ) {
    this.watcher = new FileWatcher(
      file,
      () => this.readRecords(),
      (records) => {
        this.install(records);
        opts.onReload?.();
      },
      (err) => opts.onError?.(err),
    );
  }

  /** Opens the store; a missing file is an empty store. */
  static async open(file: string, opts: TokenStoreOptions = {}): Promise<TokenStore> {
    const s = new TokenStore(file, opts);
    await s.watcher.prime();
    await s.load();
    s.watcher.start(opts.pollMs ?? 2000);
    return s;
  }

  private async load(): Promise<void> {
    this.install(await this.readRecords());
  }

  private install(records: TokenRecord[]): void {
    this.byId = new Map(records.map((r) => [r.id, r]));
  }

  private async readRecords(): Promise<TokenRecord[]> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return parseFile(text, this.file);
  }

  list(): TokenRecord[] {
    return [...this.byId.values()].map((r) => ({ ...r, scopes: [...r.scopes] }));
  }

  get(id: string): TokenRecord | undefined {
    return this.byId.get(id);
  }

  /** Makes a token; the returned `token` is the only copy of the secret there will ever be. */
  async create(input: CreateTokenInput): Promise<CreatedToken> {
    if (!/^[^\s:]+$/.test(input.user)) throw new TokenStoreError(`user name "${input.user}" must be non-empty with no spaces or colons`);
    for (const s of input.scopes ?? []) {
      if (!/^\S+$/.test(s)) throw new TokenStoreError(`scope "${s}" must be non-empty with no spaces`);
    }
    const now = input.now ?? Date.now();
    const secret = randomString(SECRET_ALPHABET, SECRET_LENGTH);
    let record!: TokenRecord;
    await this.mutate((records) => {
      const ids = new Set(records.map((r) => r.id));
      let id = randomString(ID_ALPHABET, ID_LENGTH);
      while (ids.has(id)) id = randomString(ID_ALPHABET, ID_LENGTH);
      record = {
        id,
        user: input.user,
        scopes: [...new Set(input.scopes ?? [])],
        created: new Date(now).toISOString(),
        expires: input.expiresInMs === null ? null : new Date(now + input.expiresInMs).toISOString(),
        hash: hashSecret(secret),
      };
      if (input.description) record.description = input.description;
      records.push(record);
      return records;
    });
    return { token: `${TOKEN_PREFIX}${record.id}_${secret}`, record };
  }

  /** Marks a token revoked; null if there is no such id. Revoking twice keeps the first time. */
  async revoke(id: string, now = Date.now()): Promise<TokenRecord | null> {
    let found: TokenRecord | null = null;
    await this.mutate((records) => {
      const r = records.find((x) => x.id === id);
      if (!r) return null;
      r.revoked ??= new Date(now).toISOString();
      found = r;
      return records;
    });
    return found;
  }

  /** Checks a whole token. Unknown ids look at the file once more: another process may have just made it. */
  async verify(token: string, now = Date.now()): Promise<TokenVerdict> {
    const m = TOKEN_SHAPE.exec(token);
    if (!m) return { ok: false, reason: 'malformed' };
    const id = m[1] as string;
    let record = this.byId.get(id);
    if (!record) {
      await this.watcher.check();
      record = this.byId.get(id);
      if (!record) return { ok: false, reason: 'unknown', id };
    }
    const want = Buffer.from(record.hash.slice('sha256:'.length), 'hex');
    const got = createHash('sha256')
      .update(m[2] as string)
      .digest();
    if (!timingSafeEqual(want, got)) return { ok: false, reason: 'mismatch', id };
    if (record.revoked) return { ok: false, reason: 'revoked', id };
    const expiresAt = record.expires === null ? null : Date.parse(record.expires);
    if (expiresAt !== null && !(expiresAt > now)) return { ok: false, reason: 'expired', id };
    return { ok: true, record, expiresAt };
  }

  reloadIfChanged(): Promise<boolean> {
    return this.watcher.check();
  }

  close(): void {
    this.watcher.stop();
  }

  /**
   * Read-modify-write under a lock file, from the file as it is now (not our cached copy), so two
   * `token create` runs at once both land. The write is a temp file renamed into place: a reader
   * sees the old file or the new one, never half of one.
   */
  private async mutate(change: (records: TokenRecord[]) => TokenRecord[] | null): Promise<void> {
    await mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const lock = await this.acquire();
    try {
      const next = change(await this.readRecords());
      if (next === null) return;
      const tmp = `${this.file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
      try {
        const fh = await open(tmp, 'wx', 0o600);
        try {
          await fh.writeFile(`${JSON.stringify({ version: 1, tokens: next }, null, 2)}\n`);
          await fh.sync();
        } finally {
          await fh.close();
        }
        await rename(tmp, this.file);
      } catch (err) {
        await rm(tmp, { force: true });
        throw err;
      }
      // Stamp first, then read: a change by another process after the stamp is still noticed.
      await this.watcher.prime();
      await this.load();
      this.opts.onReload?.();
    } finally {
      await lock.release();
    }
  }

  private async acquire(): Promise<HeldLock> {
    const lockFile = `${this.file}.lock`;
    const deadline = Date.now() + 10_000;
    for (;;) {
      const held = await this.locks.tryAcquire(lockFile);
      if (held) return held;
      if (Date.now() > deadline)
        throw new TokenStoreError(
          `token file ${this.file} is locked by another process (${lockFile}); retry, or remove the lock file if no gomodproxy is running`,
        );
      await new Promise((r) => setTimeout(r, 20 + randomInt(30)));
    }
  }
}
