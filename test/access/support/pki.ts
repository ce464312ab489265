// A test CA and certificates made with the openssl CLI: EC P-256, valid for two days.
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { run, scrubbedEnv } from '../../helpers/proc.js';

export interface CertFiles {
  keyPath: string;
  certPath: string;
  key: Buffer;
  cert: Buffer;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const r = await run('openssl', args, { cwd, env: scrubbedEnv(), timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

async function load(keyPath: string, certPath: string): Promise<CertFiles> {
  return { keyPath, certPath, key: await readFile(keyPath), cert: await readFile(certPath) };
}

export async function makeCa(dir: string, name: string): Promise<CertFiles> {
  const keyPath = path.join(dir, `${name}.key`);
  const certPath = path.join(dir, `${name}.crt`);
  await openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyPath,
      '-out',
      certPath,
      '-subj',
      `/CN=${name}`,
      '-days',
      '2',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  return load(keyPath, certPath);
}

export interface LeafSpec {
  name: string;
  /** Subject, e.g. /CN=ci-bot/O=Example; "/" for an empty subject. */
  subject: string;
  /** subjectAltName value, e.g. email:a@b,URI:spiffe://x. */
  san?: string;
  usage: 'serverAuth' | 'clientAuth';
}

export async function issue(ca: CertFiles, dir: string, spec: LeafSpec): Promise<CertFiles> {
  const keyPath = path.join(dir, `${spec.name}.key`);
  const csr = path.join(dir, `${spec.name}.csr`);
  const certPath = path.join(dir, `${spec.name}.crt`);
  const ext = path.join(dir, `${spec.name}.ext`);
  await writeFile(
    ext,
    [
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature',
      `extendedKeyUsage=${spec.usage}`,
      ...(spec.san ? [`subjectAltName=${spec.san}`] : []),
    ].join('\n') + '\n',
  );
  await openssl(
    ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyPath, '-out', csr, '-subj', spec.subject],
    dir,
  );
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      ca.certPath,
      '-CAkey',
      ca.keyPath,
      '-set_serial',
      `0x${randomBytes(8).toString('hex')}`,
      '-out',
      certPath,
      '-days',
      '2',
      '-extfile',
      ext,
    ],
    dir,
  );
  return load(keyPath, certPath);
}
