// Builds synthetic but valid GOPROXY trees: <escaped module>/@v/<version>.info|.mod|.zip and
// list, the layout of the go command's download cache (and of gomodproxy's data folder).
// Zips are written with yazl; every entry is under module@version/, the root go.mod equals the
// .mod, names are portable. The heavy entries are random bytes stored uncompressed, so a
// "1 MiB" zip really weighs 1 MiB on disk and on the wire.
import { createWriteStream, existsSync, readFileSync, writeFileSync, mkdirSync, rmSync, renameSync, statSync } from 'node:fs';
import { randomBytes, createHash } from 'node:crypto';
import path from 'node:path';
import { once } from 'node:events';

import yazl from 'yazl';

const MiB = 1024 * 1024;
const FILL_FORMAT = 3; // bump when the generated tree changes shape

/** The go command's case-encoding: each upper-case letter becomes '!' + its lower case. */
export function escapePath(p) {
  return p.replace(/[A-Z]/g, (c) => `!${c.toLowerCase()}`);
}

const MTIME = new Date('2024-05-01T12:00:00Z');

function goSource(pkg, n, i) {
  // Compressible Go text, different per file.
  const lines = [`package ${pkg}`, '', `// File ${n} of the synthetic benchmark module (${i}).`, ''];
  for (let k = 0; k < 40; k++) lines.push(`func F${n}_${k}(x int) int { return x*${k + 1} + ${i % 97} }`);
  return Buffer.from(`${lines.join('\n')}\n`);
}

/**
 * Writes one version: .info, .mod, .zip. `zipBytes` is the target size of the zip (random,
 * stored payload files make up the bulk; tiny targets get only text files).
 */
async function writeVersion(root, modPath, version, zipBytes, seq) {
  const dir = path.join(root, escapePath(modPath), '@v');
  mkdirSync(dir, { recursive: true });
  const gomod = Buffer.from(`module ${modPath}\n\ngo 1.21\n`);
  const time = new Date(Date.UTC(2024, 0, 1) + seq * 3600_000).toISOString().replace(/\.\d+Z$/, 'Z');
  writeFileSync(path.join(dir, `${version}.info`), JSON.stringify({ Version: version, Time: time }));
  writeFileSync(path.join(dir, `${version}.mod`), gomod);

  const prefix = `${modPath}@${version}/`;
  const zip = new yazl.ZipFile();
  const opts = { mtime: MTIME, mode: 0o644 };
  zip.addBuffer(gomod, `${prefix}go.mod`, { ...opts, compress: true });
  zip.addBuffer(Buffer.from(`Synthetic module ${modPath}@${version} for the gomodproxy benchmark.\n`), `${prefix}README.md`, { ...opts, compress: true });
  const pkg = 'bench';
  let used = 400;
  for (let n = 0; n < 3; n++) {
    const src = goSource(pkg, n, seq);
    zip.addBuffer(src, `${prefix}f${n}.go`, { ...opts, compress: true });
    used += 700 + `${prefix}f${n}.go`.length * 2; // ~ compressed size + headers
  }
  // Payload: random bytes, stored, in files of at most 4 MiB, to reach the target size.
  const overhead = (name) => 30 + 46 + name.length * 2;
  let remaining = zipBytes - used;
  let k = 0;
  while (remaining > 256) {
    const name = `${prefix}testdata/blob${k}.bin`;
    const n = Math.min(remaining - overhead(name), 4 * MiB);
    if (n <= 0) break;
    zip.addBuffer(randomBytes(n), name, { ...opts, compress: false });
    remaining -= n + overhead(name);
    k++;
  }
  zip.end();
  const tmp = path.join(dir, `${version}.zip.tmp`);
  const out = createWriteStream(tmp);
  zip.outputStream.pipe(out);
  await once(out, 'close');
  renameSync(tmp, path.join(dir, `${version}.zip`));
  return statSync(path.join(dir, `${version}.zip`)).size;
}

/** The size classes of the main tree, in order of assignment. */
const CLASSES = [
  { name: '2k', bytes: 2 * 1024 },
  { name: '1m', bytes: MiB },
  { name: '24k', bytes: 24 * 1024 },
  { name: '1m', bytes: MiB },
  { name: '200k', bytes: 200 * 1024 },
  { name: '1m', bytes: MiB },
  { name: '8k', bytes: 8 * 1024 },
  { name: '3m', bytes: 3 * MiB },
];

/**
 * The main tree: `modules` modules of `versionsPer` versions each; zip sizes cycle through
 * CLASSES (3/8 of the versions have 1 MiB zips). Some module paths have upper-case letters to
 * exercise !-escaping. Reuses the tree when bench/.out already has one of the same shape.
 * `prefix` (default bench.example) names a second tree whose module paths cannot collide with
 * the first one's, so one proxy cache can hold both.
 */
export async function fillMain(root, { modules, versionsPer, prefix = undefined }) {
  // The prefix joins the spec only when given, so trees written before it existed are reused.
  const spec = { format: FILL_FORMAT, kind: 'main', modules, versionsPer, ...(prefix ? { prefix } : {}) };
  return reuseOrFill(root, spec, async () => {
    const versions = [];
    let seq = 0;
    for (let i = 0; i < modules; i++) {
      const org = i % 3 === 0 ? 'Acme' : i % 3 === 1 ? 'example' : 'BigCorp';
      const modPath = `${prefix ?? 'bench.example'}/${org}/mod${String(i).padStart(3, '0')}`;
      const list = [];
      for (let j = 0; j < versionsPer; j++) {
        const version = j === versionsPer - 1 && versionsPer > 2 ? `v1.${j}.0-rc.1` : `v1.${j}.${i % 5}`;
        const cls = CLASSES[seq % CLASSES.length];
        const size = await writeVersion(root, modPath, version, cls.bytes, seq);
        versions.push({ module: modPath, escaped: escapePath(modPath), version, zipClass: cls.name, zipBytes: size });
        list.push(version);
        seq++;
      }
      writeFileSync(path.join(root, escapePath(modPath), '@v', 'list'), `${list.join('\n')}\n`);
    }
    return versions;
  });
}

/** The big tree for the memory run: `count` versions with zips of 20..50 MiB (spread evenly). */
export async function fillBig(root, { count, minMiB = 20, maxMiB = 50 }) {
  return reuseOrFill(root, { format: FILL_FORMAT, kind: 'big', count, minMiB, maxMiB }, async () => {
    const versions = [];
    for (let i = 0; i < count; i++) {
      const modPath = `bench.example/Big/zip${String(i).padStart(2, '0')}`;
      const mib = count === 1 ? minMiB : Math.round(minMiB + ((maxMiB - minMiB) * i) / (count - 1));
      const version = 'v1.0.0';
      const size = await writeVersion(root, modPath, version, mib * MiB, 10_000 + i);
      versions.push({ module: modPath, escaped: escapePath(modPath), version, zipClass: `${mib}m`, zipBytes: size });
      writeFileSync(path.join(root, escapePath(modPath), '@v', 'list'), `${version}\n`);
    }
    return versions;
  });
}

/**
 * The slow-reader tree: one version with a `zipMiB` MiB zip (bench.example/Slow/big v1.0.0,
 * listed first in the manifest) and `smallVersions` versions with 2 KiB zips whose .info and
 * .mod are the warm hits measured beside the slow readers.
 */
export async function fillSlow(root, { zipMiB, smallVersions }) {
  return reuseOrFill(root, { format: FILL_FORMAT, kind: 'slow', zipMiB, smallVersions }, async () => {
    const versions = [];
    const big = { module: 'bench.example/Slow/big', version: 'v1.0.0' };
    const size = await writeVersion(root, big.module, big.version, zipMiB * MiB, 20_000);
    versions.push({ ...big, escaped: escapePath(big.module), zipClass: `${zipMiB}m`, zipBytes: size });
    writeFileSync(path.join(root, escapePath(big.module), '@v', 'list'), `${big.version}\n`);
    const perModule = 8;
    for (let i = 0; i * perModule < smallVersions; i++) {
      const modPath = `bench.example/Slow/small${String(i).padStart(2, '0')}`;
      const list = [];
      for (let j = 0; j < perModule && i * perModule + j < smallVersions; j++) {
        const version = `v1.${j}.0`;
        const zipBytes = await writeVersion(root, modPath, version, 2 * 1024, 20_001 + i * perModule + j);
        versions.push({ module: modPath, escaped: escapePath(modPath), version, zipClass: '2k', zipBytes });
        list.push(version);
      }
      writeFileSync(path.join(root, escapePath(modPath), '@v', 'list'), `${list.join('\n')}\n`);
    }
    return versions;
  });
}

/**
 * The tree under `root` as `spec` describes it: reused when its manifest has the same spec,
 * else written afresh by `fill()` (which returns the versions it wrote).
 */
async function reuseOrFill(root, spec, fill) {
  const manifestFile = path.join(root, '.bench-manifest.json');
  if (existsSync(manifestFile)) {
    const m = JSON.parse(readFileSync(manifestFile, 'utf8'));
    if (JSON.stringify(m.spec) === JSON.stringify(spec)) return { ...m, reused: true };
  }
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  const manifest = { spec, versions: await fill(), createdAt: new Date().toISOString() };
  writeFileSync(manifestFile, JSON.stringify(manifest));
  return { ...manifest, reused: false };
}

export function urlPath(v, kind) {
  return `/${v.escaped}/@v/${v.version}.${kind}`;
}

/** sha256 of a file, for spot checks that both servers send the same bytes. */
export function sha256File(file) {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** The URLs of one benchmark kind: .info/.mod of every version, .zip of the 1 MiB ones; zip3m: the 3 MiB zips (streamed from disk by gomodproxy: over its 2 MiB memory-cache item limit). */
export function kindItems(tree, manifest, kind) {
  const vs =
    kind === 'zip'
      ? manifest.versions.filter((v) => v.zipClass === '1m')
      : kind === 'zip3m'
        ? manifest.versions.filter((v) => v.zipClass === '3m')
        : manifest.versions;
  return vs.map((v) => {
    const p = urlPath(v, kind === 'zip3m' ? 'zip' : kind);
    return { path: p, bytes: statSync(path.join(tree, p)).size };
  });
}
