// Builds the small Go programs under test/gotools (they wrap golang.org/x/mod and cmd/go behaviour
// so our TypeScript is checked against Go's own answers, at test time, never against stored ones).
import { execFile } from 'node:child_process';
import { mkdir, open, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
export const gotoolsDir = path.resolve(here, '../gotools');
const binDir = path.resolve(here, '../.tmp/bin');

const built = new Map<string, Promise<string>>();

/** Path of the built binary for test/gotools/<name>; built once per machine state (go's build cache makes rebuilds cheap). */
export function goTool(name: string): Promise<string> {
  let p = built.get(name);
  if (!p) {
    p = build(name);
    built.set(name, p);
  }
  return p;
}

async function build(name: string): Promise<string> {
  await mkdir(binDir, { recursive: true });
  const out = path.join(binDir, name);
  // Vitest runs test files in parallel processes: serialise builds of one tool with an exclusive lock file.
  const lock = `${out}.lock`;
  for (let i = 0; ; i++) {
    try {
      const fh = await open(lock, 'wx');
      await fh.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const st = await stat(lock).catch(() => null);
      if (st && Date.now() - st.mtimeMs > 300_000) await rm(lock, { force: true });
      if (i > 3000) throw new Error(`timed out waiting for ${lock}`, { cause: err });
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    await run('go', ['build', '-o', out, `./${name}`], {
      cwd: gotoolsDir,
      env: { ...process.env, GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local' },
      maxBuffer: 16 << 20,
    });
  } finally {
    await rm(lock, { force: true });
  }
  return out;
}

/** Runs a built tool with `input` on stdin and returns its stdout. */
export async function runGoTool(name: string, args: string[], input?: string | Buffer): Promise<string> {
  const bin = await goTool(name);
  return new Promise((resolve, reject) => {
    const child = execFile(bin, args, { maxBuffer: 256 << 20, encoding: 'buffer' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${name} ${args.join(' ')}: ${err.message}\n${stderr.toString()}`));
      else resolve(stdout.toString('utf8'));
    });
    if (input !== undefined) child.stdin?.end(input);
    else child.stdin?.end();
  });
}
