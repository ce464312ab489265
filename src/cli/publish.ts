// `gomodproxy publish [dir] --version vX.Y.Z`: makes the module zip of a folder exactly as
// golang.org/x/mod/zip.CreateFromDir makes it (VCS folders, nested modules and vendored packages
// left out), and uploads it to a gomodproxy's publish API with a token that has the publish role.
// The module path comes from the folder's go.mod (--module only for a module without one). What
// is sent is checked again by the server; the go.sum lines it answers with are printed on
// standard output, everything else on standard error.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { errorMessage } from '../errors.js';
import { ModuleError, canonicalVersion, check, escapePath, escapeVersion, modulePathOf } from '../module/index.js';
import { hashGoMod, listModuleDir, writeModuleZip, ZipError } from '../modzip/index.js';

export interface PublishOptions {
  version: string;
  module?: string;
  url?: string;
  token?: string;
  /** Make the zip and print its go.sum lines; send nothing. */
  dryRun?: boolean;
  timeoutMs?: number;
}

/** Resolves with the exit code: 0 published (or already, with the same content), 1 refused, 2 unusable input. */
export async function runPublish(dir: string, opts: PublishOptions): Promise<number> {
  const err = process.stderr;
  const fail = (code: number, line: string): number => {
    err.write(`gomodproxy publish: ${line}\n`);
    return code;
  };
  const root = path.resolve(dir);
  const st = await stat(root).catch(() => null);
  if (!st?.isDirectory()) return fail(2, `${root} is not a folder; give the module's root folder (where its go.mod is)`);

  const listing = await listModuleDir(root);
  let modulePath = opts.module;
  if (listing.goMod) {
    let declared: string;
    try {
      declared = modulePathOf(listing.goMod);
    } catch (e) {
      return fail(2, `${path.join(root, 'go.mod')} has no module line it can read (${errorMessage(e)})`);
    }
    if (modulePath !== undefined && modulePath !== declared) {
      return fail(2, `--module ${modulePath} is not the module ${declared} that ${path.join(root, 'go.mod')} declares; leave --module out`);
    }
    modulePath = declared;
  }
  if (modulePath === undefined) return fail(2, `${root} has no go.mod; give the module path with --module`);
  const version = opts.version;
  if (canonicalVersion(version) !== version) {
    return fail(
      2,
      `--version ${version} is not a canonical semantic version such as v1.2.3${canonicalVersion(version) ? ` (did you mean ${canonicalVersion(version)}?)` : ''}`,
    );
  }
  try {
    check(modulePath, version);
  } catch (e) {
    if (e instanceof ModuleError) return fail(2, e.message);
    throw e;
  }

  const tmp = await mkdtemp(path.join(os.tmpdir(), 'gomodproxy-publish-'));
  try {
    const zipFile = path.join(tmp, 'module.zip');
    let made: { h1: string; size: number };
    try {
      made = await writeModuleZip(listing.files, { modulePath, version, goVersion: listing.goVersion }, createWriteStream(zipFile));
    } catch (e) {
      if (e instanceof ZipError) return fail(2, e.message);
      throw e;
    }
    if (opts.dryRun) {
      err.write(`made the zip of ${modulePath}@${version} (${made.size} bytes); not sent (--dry-run)\n`);
      const goModH1 = hashGoMod(listing.goMod ?? Buffer.from(`module ${modulePath}\n`));
      process.stdout.write(`${modulePath} ${version} ${made.h1}\n${modulePath} ${version}/go.mod ${goModH1}\n`);
      return 0;
    }
    if (!opts.url) return fail(2, 'give the proxy with --url (or GOMODPROXY_URL), e.g. --url https://goproxy.corp.example');
    if (!opts.token)
      return fail(2, 'give a token with the publish role with --token (or GOMODPROXY_TOKEN); make one with gomodproxy token create --user ci --scope publish');
    const base = opts.url.replace(/\/+$/, '');
    const target = `${base}/-/api/publish/${escapePath(modulePath)}/@v/${escapeVersion(version)}`;
    let res;
    try {
      res = await request(target, {
        method: 'PUT',
        headers: { authorization: `Bearer ${opts.token}`, 'content-type': 'application/zip', 'content-length': String(made.size) },
        body: createReadStream(zipFile),
        headersTimeout: opts.timeoutMs ?? 300_000,
        bodyTimeout: opts.timeoutMs ?? 300_000,
      });
    } catch (e) {
      return fail(1, `cannot reach ${base} (${errorMessage(e)})`);
    }
    const text = await res.body.text();
    let answer: Record<string, unknown> = {};
    try {
      answer = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // Not our API (a reverse proxy's error page): say what came back.
    }
    if (res.statusCode !== 200 && res.statusCode !== 201) {
      const why = typeof answer.error === 'string' ? answer.error : `HTTP ${res.statusCode}: ${text.slice(0, 200).replace(/\s+/g, ' ')}`;
      return fail(1, `${modulePath}@${version} was not published: ${why}`);
    }
    if (answer.h1 !== made.h1) {
      return fail(1, `the server recorded ${String(answer.h1)} for ${modulePath}@${version}, but the zip sent was ${made.h1}; report this to its operator`);
    }
    err.write(
      answer.unchanged
        ? `${modulePath}@${version} was already published with this content; nothing changed\n`
        : `published ${modulePath}@${version} to ${base}\n`,
    );
    process.stdout.write(`${modulePath} ${version} ${made.h1}\n${modulePath} ${version}/go.mod ${String(answer.goModH1)}\n`);
    return 0;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
