// Signed notes, checked against golang.org/x/mod/sumdb/note at test time (test/gotools/tlogcheck).
import { afterAll, describe, expect, it } from 'vitest';
import { NoteError, generateKey, keyHash, newSigner, newVerifier, openNote, sign } from '../../src/sumdb/index.js';
import type { Signer } from '../../src/sumdb/index.js';
import { runGoTool } from '../helpers/gotools.js';
import { cleanupAll } from '../helpers/tmp.js';

afterAll(cleanupAll);

const goGenKey = async (name: string): Promise<{ skey: string; vkey: string }> =>
  JSON.parse(await runGoTool('tlogcheck', ['genkey', name])) as { skey: string; vkey: string };
const goSign = (text: string, ...skeys: string[]): Promise<string> => runGoTool('tlogcheck', ['sign', ...skeys], text);

interface GoOpen {
  error?: string;
  text?: string;
  sigs?: { name: string; hash: number; base64: string }[];
  unverified?: { name: string; hash: number; base64: string }[];
}
const goOpen = async (msg: Buffer | string, ...vkeys: string[]): Promise<GoOpen> => JSON.parse(await runGoTool('tlogcheck', ['open', ...vkeys], msg)) as GoOpen;

/** What x/mod's note.Open says for the same failure (its error strings). */
function goErrorFor(err: unknown): string {
  if (!(err instanceof NoteError)) throw err;
  switch (err.kind) {
    case 'malformed-note':
      return 'malformed note';
    case 'unverified':
      return 'note has no verifiable signatures';
    case 'invalid-signature':
      return err.message; // "invalid signature for key <name>+<hash>"
    default:
      return err.kind;
  }
}

/** Opens in both implementations and checks they agree: same text and signatures, or the same error. */
async function bothOpen(msg: Buffer, vkeys: string[]): Promise<GoOpen> {
  const go = await goOpen(msg, ...vkeys);
  let ts: GoOpen;
  try {
    const n = openNote(msg, vkeys.map(newVerifier));
    ts = { text: n.text, sigs: [...n.sigs], unverified: [...n.unverifiedSigs] };
  } catch (err) {
    ts = { error: goErrorFor(err) };
  }
  expect(ts).toEqual(go);
  return go;
}

// The example in golang.org/x/mod/sumdb/note's package documentation (note.go).
const DOC_SKEY = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
const DOC_VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const DOC_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const DOC_MSG = DOC_TEXT + '\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n';

describe('keys', () => {
  it('parses the documented key pair and signs exactly as documented', () => {
    const v = newVerifier(DOC_VKEY);
    const s = newSigner(DOC_SKEY);
    expect([v.name, v.keyHash, s.name, s.keyHash]).toEqual(['PeterNeumann', 0xc74f20a3, 'PeterNeumann', 0xc74f20a3]);
    // Ed25519 is deterministic, so the documented message is reproduced byte for byte.
    expect(sign(DOC_TEXT, s).toString()).toBe(DOC_MSG);
    expect(openNote(Buffer.from(DOC_MSG), [v]).text).toBe(DOC_TEXT);
  });

  it('computes the key hash of the real sum.golang.org key', () => {
    const key = Buffer.from('Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8', 'base64');
    expect(keyHash('sum.golang.org', key)).toBe(0x033de0ae);
  });

  it('splits verifier keys on the first two + only (base64 may contain +)', () => {
    const v = newVerifier('sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8');
    expect(v.name).toBe('sum.golang.org');
  });

  it('rejects malformed keys', () => {
    const bad = [
      'PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW', // wrong hash
      'PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW', // 7 hex digits
      'Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW', // space in name
      'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq_LDE4izWy10TW', // URL alphabet
      'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T', // bad padding
      'PeterNeumann+c74f20a3',
      '',
    ];
    for (const k of bad) expect(() => newVerifier(k), k).toThrow(NoteError);
    expect(() => newSigner(DOC_SKEY.replace('c74f20a3', 'c74f20a4'))).toThrow(/does not match/);
    expect(() => newSigner(DOC_VKEY)).toThrow(NoteError);
  });

  it('does not echo a private key in errors', () => {
    try {
      newSigner(DOC_SKEY.replace('AYEK', 'A_EK'));
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).not.toContain('AYEK');
      expect((err as Error).message).not.toContain('A_EK');
    }
  });
});

describe('against Go', () => {
  it('verifies notes signed by Go, with Go-generated keys', async () => {
    const { skey, vkey } = await goGenKey('example.com/db');
    const text = 'go.sum database tree\n42\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n';
    const msg = Buffer.from(await goSign(text, skey));
    const n = openNote(msg, [newVerifier(vkey)]);
    expect(n.text).toBe(text);
    expect(n.sigs).toHaveLength(1);
    // Same key, same text: the TS signature is byte-identical to Go's.
    expect(sign(text, newSigner(skey)).equals(msg)).toBe(true);
  });

  it('has Go verify notes signed here, with keys generated here', async () => {
    const a = generateKey('a.example/log');
    const b = generateKey('b.example');
    const text = 'hello\nworld ✓\n';
    const msg = sign(text, newSigner(a.signerKey), newSigner(b.signerKey));
    const go = await goOpen(msg, a.verifierKey, b.verifierKey);
    expect(go.error).toBeUndefined();
    expect(go.text).toBe(text);
    expect(go.sigs?.map((s) => s.name)).toEqual(['a.example/log', 'b.example']);
    // Go knowing only b reports a's signature as unverified, as we do.
    await bothOpen(msg, [b.verifierKey]);
  });

  it('agrees with Go on good, bad and odd notes', async () => {
    const { skey, vkey } = await goGenKey('db.example');
    const other = await goGenKey('other.example');
    const text = 'line one\nline two\n';
    const good = Buffer.from(await goSign(text, skey));
    const sigLine = good.toString().split('\n\n')[1]!;
    const otherLine = (await goSign(text, other.skey)).split('\n\n')[1]!;
    // Flip a bit of the decoded signature (after the 4-byte key hash) and re-encode, so the line
    // stays well-formed base64 whatever random key this run generated.
    const badSig = Buffer.from(sigLine.trim().split(' ')[2]!, 'base64');
    badSig[10]! ^= 1;
    const flipped = Buffer.from(`${text}\n— db.example ${badSig.toString('base64')}\n`);
    const tamperedText = Buffer.from(good.toString().replace('line one', 'line 0ne'));
    const unknownKey = Buffer.from(text + '\n' + otherLine);
    const rawSig = Buffer.from(sigLine.trim().split(' ')[2]!, 'base64');
    rawSig[3]! ^= 1; // the key hash, not the signature
    const wrongHash = Buffer.from(`${text}\n— db.example ${rawSig.toString('base64')}\n`);
    const fake = (i: number): string => `— db${i}.example ${Buffer.alloc(68, i).toString('base64')}\n`;

    const cases: Array<[string, Buffer, string[]]> = [
      ['good', good, [vkey]],
      ['two keys, two signatures', Buffer.from(text + '\n' + sigLine + otherLine), [vkey, other.vkey]],
      ['duplicate signature', Buffer.from(text + '\n' + sigLine + sigLine), [vkey]],
      ['bad signature by a known key', flipped, [vkey]],
      ['text changed after signing', tamperedText, [vkey]],
      ['only an unknown key', unknownKey, [vkey]],
      ['wrong key hash', wrongHash, [vkey]],
      ['no verifiers at all', good, []],
      ['missing trailing newline', good.subarray(0, good.length - 1), [vkey]],
      ['no blank line', Buffer.from(text + sigLine), [vkey]],
      ['plain hyphen instead of em dash', Buffer.from(text + '\n' + sigLine.replace('—', '-')), [vkey]],
      ['control character', Buffer.from('line\tone\n\n' + sigLine), [vkey]],
      ['invalid UTF-8', Buffer.concat([Buffer.from('line '), Buffer.of(0xff), Buffer.from('\n\n' + sigLine)]), [vkey]],
      ['short signature', Buffer.from(text + '\n— db.example AAAA\n'), [vkey]],
      ['100 signatures', Buffer.from(text + '\n' + Array.from({ length: 99 }, (_, i) => fake(i)).join('') + sigLine), [vkey]],
      ['101 signatures', Buffer.from(text + '\n' + Array.from({ length: 100 }, (_, i) => fake(i)).join('') + sigLine), [vkey]],
      ['101 signatures, the valid one first', Buffer.from(text + '\n' + sigLine + Array.from({ length: 100 }, (_, i) => fake(i)).join('')), [vkey]],
    ];
    const results: Record<string, string> = {};
    for (const [name, msg, keys] of cases) {
      const go = await bothOpen(msg, keys);
      results[name] = go.error ?? 'ok';
    }
    expect(results).toMatchObject({
      good: 'ok',
      'two keys, two signatures': 'ok',
      'duplicate signature': 'ok',
      'only an unknown key': 'note has no verifiable signatures',
      'wrong key hash': 'note has no verifiable signatures',
      'missing trailing newline': 'malformed note',
      '100 signatures': 'ok',
      '101 signatures': 'malformed note',
      '101 signatures, the valid one first': 'malformed note',
    });
    expect(results['bad signature by a known key']).toMatch(/^invalid signature for key db\.example\+[0-9a-f]{8}$/);
    expect(results['text changed after signing']).toMatch(/^invalid signature for key/);
  });

  it('refuses to sign a text without a final newline', () => {
    const s: Signer = newSigner(DOC_SKEY);
    expect(() => sign('no newline', s)).toThrow(/must end in a newline/);
  });

  it('keeps existing signatures when re-signing, replacing its own', async () => {
    const a = generateKey('a.example');
    const b = generateKey('b.example');
    const once = sign('t\n', newSigner(a.signerKey));
    const n = openNote(once, [newVerifier(a.verifierKey)]);
    const twice = sign(n, newSigner(b.signerKey), newSigner(a.signerKey));
    const go = await goOpen(twice, a.verifierKey, b.verifierKey);
    expect(go.sigs?.map((s) => s.name)).toEqual(['b.example', 'a.example']);
  });
});
