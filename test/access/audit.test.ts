// The audit log: one JSON line per event with who/what/result, to a file (reopened after
// rotation) or standard output; built only from known fields, with anything shaped like a
// credential redacted, so even a careless caller cannot write a secret into it.
import { readFile, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { AuditLog, auditLine, auditRecord, redactSecrets, type AuditEvent } from '../../src/access/index.js';
import { run, scrubbedEnv } from '../helpers/proc.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { SecretWatch } from './support/secrets.js';

const watch = new SecretWatch();
const TOKEN = watch.secret(`gmp_abcdefghij12_${'Z9'.repeat(21)}x`);
const JWT = watch.secret('eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNlY3JldC1wYXJ0');
const BASIC = watch.basic('alice', 'audit-Password-5150');

afterAll(cleanupAll);

const fetchEvent: AuditEvent = {
  time: '2030-01-02T03:04:05.000Z',
  user: 'alice',
  method: 'ldap',
  address: '10.1.2.3',
  kind: 'zip',
  module: 'corp.example/private/lib',
  version: 'v1.2.3',
  status: 200,
  allowed: true,
  bytes: 12345,
  durationMs: 17.6,
  requestId: 'r-1',
};

describe('lines', () => {
  it('carry who, what, result and bytes, in a fixed order', () => {
    expect(auditLine(fetchEvent)).toBe(
      '{"time":"2030-01-02T03:04:05.000Z","log":"audit","user":"alice","method":"ldap","address":"10.1.2.3","kind":"zip","module":"corp.example/private/lib","version":"v1.2.3","status":200,"allowed":true,"bytes":12345,"durationMs":18,"requestId":"r-1"}\n',
    );
    const denied = auditRecord({
      user: 'anonymous',
      method: 'anonymous',
      address: '10.9.9.9',
      kind: 'list',
      module: 'corp.example/secret',
      status: 404,
      allowed: false,
      reason: 'rule',
    });
    expect(denied).toMatchObject({ allowed: false, reason: 'rule', status: 404 });
    expect(typeof denied.time).toBe('string');
  });

  it('redact anything shaped like a credential, whichever field it was put in', () => {
    const careless = {
      ...fetchEvent,
      reason: `upstream said: Authorization: ${BASIC}; token=${TOKEN}; retry with ${JWT}`,
      module: `https://alice:audit-Password-5150@git.example/x`,
      user: TOKEN,
      // Not a field of AuditEvent: a caller passing a whole header object by mistake.
      authorization: BASIC,
      headers: { authorization: `Bearer ${TOKEN}` },
    } as AuditEvent;
    const line = auditLine(careless);
    watch.output('careless audit line', line);
    expect(line).not.toContain('authorization":');
    expect(line).not.toContain('headers');
    expect(line).toContain('gmp_abcdefghij12_[redacted]'); // the public id stays useful
    expect(line).toContain('[redacted-jwt]');
    expect(line).toContain('https://[redacted]@git.example/x');
    expect(line.split('\n').length).toBe(2);
  });

  it('redactSecrets covers the usual shapes and leaves ordinary text alone', () => {
    expect(redactSecrets('Bearer abc.def')).toBe('Bearer [redacted]');
    expect(redactSecrets('password: hunter2!')).toBe('password: [redacted]');
    expect(redactSecrets('api_key=XYZ&x=1')).toBe('api_key=[redacted]&x=1');
    expect(redactSecrets('basic auth failed for user alice')).toBe('basic auth failed for user alice');
    expect(redactSecrets('token-expired')).toBe('token-expired');
    expect(redactSecrets('golang.org/x/mod@v0.20.0')).toBe('golang.org/x/mod@v0.20.0');
  });

  it('strip control characters so one event is one line', () => {
    const line = auditLine({ ...fetchEvent, module: 'a\nb\r\u0000c' });
    expect(line.trimEnd().includes('\n')).toBe(false);
    expect(JSON.parse(line).module).toBe('a b  c');
  });
});

describe('destinations', () => {
  it('appends to a file, created 0640, and continues in a new file after rotation + reopen()', async () => {
    const dir = await makeTempDir('audit');
    const file = path.join(dir, 'logs', 'audit.log');
    const log = new AuditLog({ enabled: true, file, sync: true });
    log.write(fetchEvent);
    log.write({ ...fetchEvent, user: 'bob', reason: `with ${BASIC}` });
    expect((await stat(file)).mode & 0o777).toBe(0o640);
    await rename(file, `${file}.1`);
    log.reopen();
    log.write({ ...fetchEvent, user: 'carol' });
    await log.close();
    const rotated = await readFile(`${file}.1`, 'utf8');
    const current = await readFile(file, 'utf8');
    watch.output('audit file', rotated);
    watch.output('audit file', current);
    expect(
      rotated
        .trimEnd()
        .split('\n')
        .map((l) => (JSON.parse(l) as { user: string }).user),
    ).toEqual(['alice', 'bob']);
    expect(JSON.parse(current)).toMatchObject({ user: 'carol', log: 'audit' });
  });

  it('writes nothing when disabled', async () => {
    const dir = await makeTempDir('audit-off');
    const log = new AuditLog({ enabled: false, file: path.join(dir, 'audit.log') });
    log.write(fetchEvent);
    await log.close();
    await expect(stat(path.join(dir, 'audit.log'))).rejects.toThrow(/ENOENT/);
  });

  it('writes to standard output when no file is set', async () => {
    const src = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/access/audit.js');
    const script = `import(${JSON.stringify(src)}).then(async ({ AuditLog }) => { const a = new AuditLog({ enabled: true }); a.write(${JSON.stringify(fetchEvent)}); await a.close(); });`;
    const r = await run(process.execPath, ['--input-type=module', '-e', script], { env: scrubbedEnv(), timeoutMs: 20_000 });
    watch.output('audit stdout', r.stdout);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject({ log: 'audit', user: 'alice', module: 'corp.example/private/lib', bytes: 12345 });
  });
});

it('leaks no secret into any output', () => {
  watch.assertClean();
});
