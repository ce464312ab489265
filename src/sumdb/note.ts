// Signed notes as used by Go checksum databases (golang.org/x/mod/sumdb/note): a text ending in a newline,
// a blank line, then one line per signature: "— <name> <base64(keyhash(4, big-endian) ‖ ed25519 sig)>".
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign as edSign, verify as edVerify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { decodeStdBase64 } from './base64.js';
import { SumdbError } from './errors.js';

/** Checks signatures made with one key. */
export interface Verifier {
  readonly name: string;
  readonly keyHash: number;
  verify(msg: Buffer, sig: Buffer): boolean;
}

/** Signs with one key. */
export interface Signer {
  readonly name: string;
  readonly keyHash: number;
  sign(msg: Buffer): Buffer;
}

/** One signature line of a note, verified or not. */
export interface Signature {
  readonly name: string;
  readonly hash: number;
  readonly base64: string;
}

export interface Note {
  readonly text: string;
  /** Signatures by known keys, all checked. */
  readonly sigs: readonly Signature[];
  /** Signatures by keys the caller did not supply; nothing is known about them. */
  readonly unverifiedSigs: readonly Signature[];
}

/**
 * Why a note or key was refused. `unverified`: the note parsed but no supplied key signed it;
 * `invalid-signature`: a supplied key's signature does not verify (the note or the key is wrong).
 */
export type NoteErrorKind = 'malformed-key' | 'malformed-note' | 'unverified' | 'invalid-signature' | 'ambiguous-key';

export class NoteError extends SumdbError {
  override readonly name: string = 'NoteError';
  readonly kind: NoteErrorKind;

  constructor(kind: NoteErrorKind, message: string) {
    super(kind === 'malformed-key' || kind === 'ambiguous-key' ? 'config' : kind === 'malformed-note' ? 'malformed' : 'verification', message);
    this.kind = kind;
  }
}

const ALG_ED25519 = 1;
// DER headers that turn a raw 32-byte Ed25519 public key / seed into SPKI / PKCS#8 for node:crypto.
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SIG_PREFIX = Buffer.from('— ', 'utf8');
const MAX_SIGNATURES = 100;

/** The key hash: the first 4 bytes (big-endian) of SHA-256(name ‖ "\n" ‖ key), key = algorithm byte ‖ public key. */
export function keyHash(name: string, key: Buffer): number {
  return createHash('sha256').update(name, 'utf8').update('\n').update(key).digest().readUInt32BE(0);
}

// Go's unicode.IsSpace (JavaScript's \s also matches U+FEFF, which Go does not treat as a space).
const SPACE = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/u;

/** A key or signer name: non-empty, no Unicode space, no '+'. */
export function isValidName(name: string): boolean {
  // The round trip through UTF-8 catches lone surrogates, which are not valid UTF-8 in Go.
  return name !== '' && !SPACE.test(name) && !name.includes('+') && Buffer.from(name, 'utf8').toString('utf8') === name;
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function parseHash(hash16: string): number | null {
  return /^[0-9a-fA-F]{8}$/.test(hash16) ? Number.parseInt(hash16, 16) : null;
}

/** Splits at the first `+`, like strings.Cut: the key data is base64 and may itself contain `+`. */
function cutPlus(s: string): [string, string] {
  const i = s.indexOf('+');
  return i < 0 ? [s, ''] : [s.slice(0, i), s.slice(i + 1)];
}

function ed25519PublicKey(raw: Buffer): KeyObject | null {
  try {
    return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
  } catch {
    return null;
  }
}

/** Parses a verifier key `<name>+<8 hex digits>+<base64(0x01 ‖ 32-byte Ed25519 public key)>`. */
export function newVerifier(vkey: string): Verifier {
  const [name, rest] = cutPlus(vkey);
  const [hash16, key64] = cutPlus(rest);
  const hash = parseHash(hash16);
  const key = decodeStdBase64(key64);
  if (hash === null || key === null || key.length === 0 || !isValidName(name)) {
    throw new NoteError('malformed-key', `malformed verifier key ${JSON.stringify(vkey)}: want <name>+<8 hex digits>+<base64 key>`);
  }
  if (hash !== keyHash(name, key)) {
    throw new NoteError(
      'malformed-key',
      `invalid verifier key ${JSON.stringify(vkey)}: the hash ${hash16} does not match the key; copy the key again from its publisher`,
    );
  }
  if (key[0] !== ALG_ED25519) {
    throw new NoteError('malformed-key', `unknown algorithm ${key[0]} in verifier key ${JSON.stringify(vkey)}: only Ed25519 (1) is supported`);
  }
  const raw = key.subarray(1);
  const pub = raw.length === 32 ? ed25519PublicKey(raw) : null;
  if (pub === null) {
    throw new NoteError('malformed-key', `malformed verifier key ${JSON.stringify(vkey)}: the Ed25519 public key must be 32 bytes`);
  }
  return {
    name,
    keyHash: hash,
    verify(msg: Buffer, sig: Buffer): boolean {
      if (sig.length !== 64) return false;
      try {
        return edVerify(null, msg, pub, sig);
      } catch {
        return false;
      }
    },
  };
}

/** Parses a signer key `PRIVATE+KEY+<name>+<8 hex digits>+<base64(0x01 ‖ 32-byte Ed25519 seed)>`. */
export function newSigner(skey: string): Signer {
  const [priv1, r1] = cutPlus(skey);
  const [priv2, r2] = cutPlus(r1);
  const [name, r3] = cutPlus(r2);
  const [hash16, key64] = cutPlus(r3);
  const hash = parseHash(hash16);
  const key = decodeStdBase64(key64);
  // Never echo a private key into an error message.
  if (priv1 !== 'PRIVATE' || priv2 !== 'KEY' || hash === null || key === null || key.length === 0 || !isValidName(name)) {
    throw new NoteError('malformed-key', 'malformed signer key: want PRIVATE+KEY+<name>+<8 hex digits>+<base64 key>');
  }
  if (key[0] !== ALG_ED25519) {
    throw new NoteError('malformed-key', `unknown algorithm ${key[0]} in signer key for ${name}: only Ed25519 (1) is supported`);
  }
  const seed = key.subarray(1);
  if (seed.length !== 32) {
    throw new NoteError('malformed-key', `malformed signer key for ${name}: the Ed25519 seed must be 32 bytes`);
  }
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  // The hash names the public key, so it can only be checked after deriving it from the seed.
  const pubRaw = createPublicKey(priv).export({ format: 'der', type: 'spki' }).subarray(SPKI_ED25519_PREFIX.length);
  if (hash !== keyHash(name, Buffer.concat([Buffer.of(ALG_ED25519), pubRaw]))) {
    throw new NoteError('malformed-key', `invalid signer key for ${name}: the hash ${hash16} does not match the key`);
  }
  return { name, keyHash: hash, sign: (msg: Buffer): Buffer => edSign(null, msg, priv) };
}

/** A new Ed25519 key pair for a database called `name` (for tests and tools). */
export function generateKey(name: string): { signerKey: string; verifierKey: string } {
  if (!isValidName(name)) throw new NoteError('malformed-key', `invalid key name ${JSON.stringify(name)}: it must be non-empty, without spaces or '+'`);
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const pubRaw = publicKey.export({ format: 'der', type: 'spki' }).subarray(SPKI_ED25519_PREFIX.length);
  const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_ED25519_PREFIX.length);
  const pub = Buffer.concat([Buffer.of(ALG_ED25519), pubRaw]);
  const hash = hex8(keyHash(name, pub));
  return {
    signerKey: `PRIVATE+KEY+${name}+${hash}+${Buffer.concat([Buffer.of(ALG_ED25519), seed]).toString('base64')}`,
    verifierKey: `${name}+${hash}+${pub.toString('base64')}`,
  };
}

/** Builds an encoded verifier key from a name and a raw 32-byte Ed25519 public key. */
export function newEd25519VerifierKey(name: string, publicKey: Buffer): string {
  if (publicKey.length !== 32) throw new NoteError('malformed-key', `invalid Ed25519 public key size ${publicKey.length}, want 32`);
  const pub = Buffer.concat([Buffer.of(ALG_ED25519), publicKey]);
  return `${name}+${hex8(keyHash(name, pub))}+${pub.toString('base64')}`;
}

/** Known keys, looked up by name and key hash. */
export type Verifiers = readonly Verifier[];

/**
 * Signs `note` (a text, or a note whose existing signatures are kept) with each signer and returns the
 * encoded message. An existing signature by the same key as a new one is dropped, as x/mod does.
 */
export function sign(note: string | Note, ...signers: Signer[]): Buffer {
  const n: Note = typeof note === 'string' ? { text: note, sigs: [], unverifiedSigs: [] } : note;
  if (!n.text.endsWith('\n')) throw new NoteError('malformed-note', 'note text must end in a newline');
  const text = Buffer.from(n.text, 'utf8');
  const have = new Set<string>();
  const newLines: string[] = [];
  for (const s of signers) {
    if (!isValidName(s.name)) throw new NoteError('malformed-key', `invalid signer name ${JSON.stringify(s.name)}`);
    have.add(`${s.name}+${hex8(s.keyHash)}`);
    const hbuf = Buffer.alloc(4);
    hbuf.writeUInt32BE(s.keyHash >>> 0);
    newLines.push(`— ${s.name} ${Buffer.concat([hbuf, s.sign(text)]).toString('base64')}\n`);
  }
  const oldLines: string[] = [];
  for (const sig of [...n.sigs, ...n.unverifiedSigs]) {
    if (!isValidName(sig.name)) throw new NoteError('malformed-note', `invalid signature name ${JSON.stringify(sig.name)}`);
    if (have.has(`${sig.name}+${hex8(sig.hash)}`)) continue;
    const raw = decodeStdBase64(sig.base64);
    if (raw === null || raw.length < 4 || raw.readUInt32BE(0) !== sig.hash) {
      throw new NoteError('malformed-note', `signature by ${sig.name} does not match its key hash`);
    }
    oldLines.push(`— ${sig.name} ${sig.base64}\n`);
  }
  return Buffer.concat([text, Buffer.from(`\n${oldLines.join('')}${newLines.join('')}`, 'utf8')]);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parses a signed note and checks its signatures against the known verifiers, with x/mod's rules:
 * at most 100 signatures; signatures by unknown keys are kept as unverified; a known key with a bad
 * signature is an error; at least one known key must have signed. Duplicate signatures are dropped.
 */
export function openNote(msg: Buffer, verifiers: Verifiers): Note {
  const malformed = (why: string): NoteError => new NoteError('malformed-note', `malformed signed note: ${why}`);
  // Valid UTF-8 without ASCII control characters other than newline. Control bytes never occur inside
  // multi-byte UTF-8 sequences, so a byte scan is exact.
  for (const b of msg) {
    if (b < 0x20 && b !== 0x0a) throw malformed('control character');
  }
  try {
    utf8.decode(msg);
  } catch {
    throw malformed('invalid UTF-8');
  }
  const split = msg.lastIndexOf('\n\n');
  if (split < 0) throw malformed('no blank line before the signatures');
  const textBytes = msg.subarray(0, split + 1);
  let sigs = msg.subarray(split + 2);
  if (sigs.length === 0 || sigs[sigs.length - 1] !== 0x0a) throw malformed('no signature lines');

  const byKey = new Map<string, Verifier[]>();
  for (const v of verifiers) {
    const k = `${v.name}+${hex8(v.keyHash)}`;
    byKey.set(k, [...(byKey.get(k) ?? []), v]);
  }

  const verified: Signature[] = [];
  const unverified: Signature[] = [];
  const seen = new Set<string>();
  const seenUnverified = new Set<string>();
  let count = 0;
  while (sigs.length > 0) {
    const nl = sigs.indexOf(0x0a);
    let line = sigs.subarray(0, nl);
    sigs = sigs.subarray(nl + 1);
    if (!line.subarray(0, SIG_PREFIX.length).equals(SIG_PREFIX)) throw malformed('signature line does not start with "— "');
    line = line.subarray(SIG_PREFIX.length);
    const lineText = line.toString('utf8');
    const sp = lineText.indexOf(' ');
    const name = sp < 0 ? lineText : lineText.slice(0, sp);
    const b64 = sp < 0 ? '' : lineText.slice(sp + 1);
    const raw = decodeStdBase64(b64);
    if (raw === null || !isValidName(name) || b64 === '' || raw.length < 5) throw malformed('bad signature line');
    const hash = raw.readUInt32BE(0);
    if (++count > MAX_SIGNATURES) throw malformed(`more than ${MAX_SIGNATURES} signatures`);

    const k = `${name}+${hex8(hash)}`;
    const vs = byKey.get(k);
    if (vs === undefined) {
      if (seenUnverified.has(lineText)) continue;
      seenUnverified.add(lineText);
      unverified.push({ name, hash, base64: b64 });
      continue;
    }
    if (vs.length > 1) throw new NoteError('ambiguous-key', `ambiguous key ${k}: two verifiers share a name and key hash`);
    if (seen.has(k)) continue;
    seen.add(k);
    if (!vs[0]!.verify(textBytes, raw.subarray(4))) {
      throw new NoteError('invalid-signature', `invalid signature for key ${k}`);
    }
    verified.push({ name, hash, base64: b64 });
  }
  if (verified.length === 0) {
    const names = [...new Set(unverified.map((s) => `${s.name}+${hex8(s.hash)}`))].join(', ');
    throw new NoteError('unverified', `note has no verifiable signatures (signed by ${names}; check the configured verifier key)`);
  }
  return { text: textBytes.toString('utf8'), sigs: verified, unverifiedSigs: unverified };
}
