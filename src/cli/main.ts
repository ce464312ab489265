#!/usr/bin/env node
// The gomodproxy command: `serve` and the operator commands, each with --help. Each command's
// module is imported when it runs, so a command loads only what it uses (--version loads none).
import { Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError } from '../config/error.js';
import { parseDuration, parseSize } from '../config/units.js';
import { tokenCommand } from './token.js';

const program = new Command();
program
  .name('gomodproxy')
  .description('A caching Go module proxy. Point GOPROXY at it: go env -w GOPROXY=http://localhost:3000,direct')
  .version('0.1.0')
  // Program options only before the command: `publish --version v1.2.3` is publish's own option.
  .enablePositionalOptions()
  .showHelpAfterError();

function int(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('expected a whole number');
  return Number(value);
}

function duration(value: string): number {
  try {
    const ms = parseDuration(value);
    if (ms <= 0) throw new Error('expected a duration above zero');
    return ms;
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

function positive(value: string): number {
  const n = int(value);
  if (n < 1) throw new InvalidArgumentError('expected 1 or more');
  return n;
}

program
  .command('serve')
  .description('Serve the GOPROXY protocol, caching every immutable artifact under the data folder')
  .option('-c, --config <file>', 'YAML config file (default: ./gomodproxy.yaml when present; env GOMODPROXY_CONFIG)')
  .option('-l, --listen <host:port>', 'address to serve on (default 0.0.0.0:3000; env GOMODPROXY_LISTEN)')
  .option('-d, --data <dir>', 'data folder: the disk cache, itself a valid file:// GOPROXY (default ./data; env GOMODPROXY_DATA)')
  .option('-u, --upstream <list>', 'upstreams in GOPROXY syntax, e.g. "https://proxy.golang.org,direct" (default: $GOPROXY; env GOMODPROXY_UPSTREAM)')
  .option('-w, --workers <n>', 'worker processes sharing the port (default: one per core; env GOMODPROXY_WORKERS)', int)
  .option('--path-prefix <path>', 'serve under a path prefix such as /go (env GOMODPROXY_PATH_PREFIX)')
  .option(
    '--sumdb <setting>',
    'checksum database in GOSUMDB syntax: "off", a known name, or "<verifier key> [<url>]" (default: $GOSUMDB, else sum.golang.org; env GOMODPROXY_SUMDB)',
  )
  .addOption(new Option('--log-level <level>', 'log level (env GOMODPROXY_LOG_LEVEL)').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
  .option('--no-access-log', 'do not log one line per request (env GOMODPROXY_LOG_ACCESS=false)')
  .action(
    async (opts: {
      config?: string;
      listen?: string;
      data?: string;
      upstream?: string;
      workers?: number;
      pathPrefix?: string;
      sumdb?: string;
      logLevel?: string;
      accessLog?: boolean;
    }) => {
      await (
        await import('./serve.js')
      ).runServe({
        file: opts.config,
        flags: {
          listen: opts.listen,
          data: opts.data,
          upstream: opts.upstream,
          workers: opts.workers,
          pathPrefix: opts.pathPrefix,
          sumdb: opts.sumdb,
          'log.level': opts.logLevel,
          // commander sets accessLog=true by default; only an explicit --no-access-log is a flag.
          'log.access': opts.accessLog === false ? false : undefined,
        },
      });
    },
  );

program
  .command('import')
  .description(
    'Copy modules from a GOPROXY-layout folder (e.g. $(go env GOMODCACHE)/cache/download) into the data folder, checking each one; a missing .info is derived (pseudo-versions) or fetched through the upstreams, else the version is reported and not imported. Exit status: 0 all imported, 1 some not, 2 the folder cannot be read',
  )
  .argument('<dir>', 'folder to import from')
  .option('-c, --config <file>', 'YAML config file (default: ./gomodproxy.yaml when present; env GOMODPROXY_CONFIG)')
  .option('-d, --data <dir>', 'data folder to import into (default ./data; env GOMODPROXY_DATA)')
  .option(
    '-u, --upstream <list>',
    'upstreams in GOPROXY syntax that a missing .info or .mod is fetched through, as serve would; off: nothing is fetched (default: $GOPROXY; env GOMODPROXY_UPSTREAM)',
  )
  .option(
    '--sumdb <setting>',
    'checksum database public modules are checked against, in GOSUMDB syntax (default: $GOSUMDB, else sum.golang.org; env GOMODPROXY_SUMDB)',
  )
  .option('--no-progress', 'no progress bar, even on a terminal')
  .action(async (dir: string, opts: { config?: string; data?: string; upstream?: string; sumdb?: string; progress?: boolean }) => {
    process.exitCode = await (
      await import('./import.js')
    ).runImport(dir, {
      file: opts.config,
      flags: { data: opts.data, upstream: opts.upstream, sumdb: opts.sumdb },
      progress: opts.progress === false ? false : undefined,
    });
  });

program
  .command('publish')
  .description(
    'Publish the module in a folder to a gomodproxy: its zip is made as the go command makes it (VCS folders, nested modules and vendored packages left out) and uploaded to a route with publish: true. Prints the go.sum lines. Exit status: 0 published (or already, with this content), 1 refused, 2 unusable folder or arguments',
  )
  .argument('[dir]', 'the module root folder (where its go.mod is)', '.')
  .requiredOption('-v, --version <version>', 'the version to publish, canonical semver such as v1.2.3')
  .option('-m, --module <path>', 'module path, for a folder without a go.mod (default: the go.mod module line)')
  .option('--url <url>', 'the gomodproxy to publish to (env GOMODPROXY_URL)')
  .option(
    '--token <token>',
    'a token with the publish role: gomodproxy token create --user ci --scope publish (env GOMODPROXY_TOKEN, which keeps it out of the process list)',
  )
  .option('--dry-run', 'make the zip and print its go.sum lines, send nothing')
  .action(async (dir: string, opts: { version: string; module?: string; url?: string; token?: string; dryRun?: boolean }) => {
    process.exitCode = await (
      await import('./publish.js')
    ).runPublish(dir, {
      version: opts.version,
      module: opts.module,
      url: opts.url ?? process.env.GOMODPROXY_URL,
      token: opts.token ?? process.env.GOMODPROXY_TOKEN,
      dryRun: opts.dryRun,
    });
  });

program
  .command('vulndb')
  .description(
    'Mirror the Go vulnerability database (vulndb.url) into the data folder now, checked as a running server checks it, e.g. before carrying the folder to an offline gomodproxy. Prints the refresh report as JSON. Exit status: 0 updated or already current, 1 it failed',
  )
  .option('-c, --config <file>', 'YAML config file (default: ./gomodproxy.yaml when present; env GOMODPROXY_CONFIG)')
  .option('-d, --data <dir>', 'data folder (default ./data; env GOMODPROXY_DATA)')
  .option('--url <url>', 'the database to mirror (default vulndb.url, https://vuln.go.dev; env GOMODPROXY_VULNDB_URL)')
  .action(async (opts: { config?: string; data?: string; url?: string }) => {
    process.exitCode = await (await import('./vulndb.js')).runVulndbSync({ file: opts.config, flags: { data: opts.data, 'vulndb.url': opts.url } });
  });

program
  .command('prefetch')
  .description(
    'Fill the cache with module versions (.info, .mod, .zip) through the configured upstreams, checked and verified as serve checks a miss, e.g. to carry them to an offline gomodproxy. Takes module@version (or @latest, @v1.2, @<branch>) arguments and files: a go.mod, a go.sum, the output of go list -m all or go list -m -json all, or lines of module@version (- reads standard input). Versions already complete are skipped. Exit status: 0 all in the cache, 1 some failed (each named with the reason), 2 the input cannot be read',
  )
  .argument(
    '[input...]',
    'module@version or module@query, or a file (go.mod, go.sum, go list -m [-json] all output, module@version lines), or - for standard input',
  )
  .option('-c, --config <file>', 'YAML config file (default: ./gomodproxy.yaml when present; env GOMODPROXY_CONFIG)')
  .option('-d, --data <dir>', 'data folder to fill (default ./data; env GOMODPROXY_DATA)')
  .option('-u, --upstream <list>', 'upstreams in GOPROXY syntax, as serve would use them (default: $GOPROXY; env GOMODPROXY_UPSTREAM)')
  .option(
    '--sumdb <setting>',
    'checksum database public modules are verified against, in GOSUMDB syntax (default: $GOSUMDB, else sum.golang.org; env GOMODPROXY_SUMDB)',
  )
  .option('--deps', "also every version each fetched version's go.mod requires, transitively: the whole requirement graph")
  .option('-j, --concurrency <n>', 'versions fetched at once (default 8)', positive)
  .option('--json', 'one JSON line per module version on stdout, even on a terminal (the default when stdout or stderr is not one)')
  .action(
    async (
      inputs: string[],
      opts: { config?: string; data?: string; upstream?: string; sumdb?: string; deps?: boolean; concurrency?: number; json?: boolean },
    ) => {
      process.exitCode = await (
        await import('./prefetch.js')
      ).runPrefetch(inputs, {
        file: opts.config,
        flags: { data: opts.data, upstream: opts.upstream, sumdb: opts.sumdb },
        deps: opts.deps,
        concurrency: opts.concurrency,
        json: opts.json ? true : undefined,
      });
    },
  );

program.addCommand(tokenCommand());

program
  .command('verify')
  .description(
    'Re-check every cached module version: the zip is checked and hashed again and must match its .ziphash and, for public modules, the checksum database (as serve reaches it); bad versions are reported. Exit status: 0 all good, 1 something bad found, 2 something could not be checked',
  )
  .option('-c, --config <file>', 'YAML config file (default: ./gomodproxy.yaml when present; env GOMODPROXY_CONFIG)')
  .option('-d, --data <dir>', 'data folder to check (default ./data; env GOMODPROXY_DATA)')
  .option(
    '-u, --upstream <list>',
    'upstreams in GOPROXY syntax; the database is reached through the first that supports it, as by serve (env GOMODPROXY_UPSTREAM)',
  )
  .option('--sumdb <setting>', 'checksum database in GOSUMDB syntax (default: $GOSUMDB, else sum.golang.org; env GOMODPROXY_SUMDB)')
  .option('--offline', 'never reach the database: compare each zip with its .ziphash, and with database records verified and kept earlier')
  .option(
    '--purge',
    "delete every bad version's files (.info, .zip, .ziphash, .mod) and rewrite its module's list, so it is fetched and verified again when next asked for",
  )
  .option('-j, --concurrency <n>', 'versions checked at once (default 4)', int)
  .option('--no-progress', 'no progress bar, even on a terminal')
  .action(
    async (opts: {
      config?: string;
      data?: string;
      upstream?: string;
      sumdb?: string;
      offline?: boolean;
      purge?: boolean;
      concurrency?: number;
      progress?: boolean;
    }) => {
      process.exitCode = await (
        await import('./verify.js')
      ).runVerify({
        file: opts.config,
        flags: { data: opts.data, upstream: opts.upstream, sumdb: opts.sumdb },
        offline: opts.offline,
        purge: opts.purge,
        concurrency: opts.concurrency,
        // commander sets progress=true by default: only --no-progress is a choice; otherwise follow the terminal.
        progress: opts.progress === false ? false : undefined,
      });
    },
  );

function size(value: string): number {
  try {
    return parseSize(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

program
  .command('gc')
  .description(
    'Garbage-collect the store a server uses, by its config (gc.maxBytes, gc.maxAge, gc.pin, routes, offline): the zips not served for max-age, then the least recently served until the module data is under max-bytes, then the .mod and .info of versions nobody asked for; never what is pinned, what cannot be fetched again (offline, a route without sources, imported or published versions) or what is being fetched. Safe beside running servers. Exit status: 0 done, 1 a failure, 2 a bad setting',
  )
  .option('-c, --config <file>', 'YAML config file (default: ./gomodproxy.yaml when present; env GOMODPROXY_CONFIG)')
  .option('-d, --data <dir>', 'data folder (default ./data; env GOMODPROXY_DATA)')
  .option('--dry-run', 'only report what would be evicted; nothing changes')
  .option('--json', 'print the report as one JSON object')
  .option('--max-bytes <size>', 'bound of the module data, e.g. 50GiB (default gc.maxBytes)', size)
  .option('--max-age <duration>', 'evict what was not served for this long, e.g. 90d (default gc.maxAge)', duration)
  .action(async (opts: { config?: string; data?: string; dryRun?: boolean; json?: boolean; maxBytes?: number; maxAge?: number }) => {
    process.exitCode = await (
      await import('./gc.js')
    ).runGc({
      file: opts.config,
      flags: { data: opts.data },
      dryRun: opts.dryRun,
      json: opts.json,
      maxBytes: opts.maxBytes,
      maxAgeMs: opts.maxAge,
    });
  });

program
  .command('invalidate')
  .description(
    'Drop the cached list, @latest and query answers of the matching modules on every instance at once (a new tag is then seen at once, not after cache.ttl). With redis configured it publishes there; otherwise it asks the server at --url (default: the configured listen address) through its admin API. Exit status: 0 done, 1 refused or failed, 2 a bad pattern or version',
  )
  .argument('<pattern>', 'a module path or GOPRIVATE-style glob (example.com/team/*), optionally @version to drop that version from every memory too')
  .option('-c, --config <file>', 'YAML config file (default: ./gomodproxy.yaml when present; env GOMODPROXY_CONFIG)')
  .option('--url <url>', 'the server to ask, e.g. http://proxy.internal:3000 (its admin API)')
  .option('--token <token>', 'an admin credential for the admin API, sent as a Bearer token (env GOMODPROXY_TOKEN)')
  .action(async (pattern: string, opts: { config?: string; url?: string; token?: string }) => {
    process.exitCode = await (await import('./invalidate.js')).runInvalidate(pattern, { file: opts.config, url: opts.url, token: opts.token });
  });

program
  .command('doctor')
  .description(
    'Find why the go command on this machine cannot use the proxy: its settings as go env -json reports them (GOPROXY, GOPRIVATE/GONOPROXY, GOSUMDB, GOINSECURE, GOFLAGS, GOAUTH, .netrc), HTTP proxies, the connection and TLS as the go command verifies it, /healthz and /readyz, credentials, the checksum database through the proxy, and a real go mod download in a throwaway cache. One line per finding: ok|warn|fail <check>: <what> — <fix>. Exit status: 0 nothing failed, 1 something failed, 2 bad arguments',
  )
  .argument('[url]', 'the proxy to check (default: the first http(s) entry of GOPROXY)')
  .option('-m, --module <path[@version]>', 'a module the proxy should serve, fetched for real (default: golang.org/x/text@latest)')
  .option('--json', 'one JSON object per finding ({status, check, message, fix}), one per line')
  .option('--timeout <duration>', 'limit of each network step, e.g. 10s (default 10s)')
  .option('--go-timeout <duration>', 'limit of the go command download (default 2m)')
  .action(async (url: string | undefined, opts: { module?: string; json?: boolean; timeout?: string; goTimeout?: string }) => {
    let timeoutMs: number | undefined;
    let goTimeoutMs: number | undefined;
    try {
      timeoutMs = opts.timeout === undefined ? undefined : duration(opts.timeout);
      goTimeoutMs = opts.goTimeout === undefined ? undefined : duration(opts.goTimeout);
    } catch (err) {
      // Parsed here rather than by commander, whose errors exit 1: 1 means "something failed" for doctor.
      process.stderr.write(`gomodproxy doctor: ${(err as Error).message}\n`);
      process.exitCode = 2;
      return;
    }
    process.exitCode = await (await import('./doctor.js')).runDoctor({ url, module: opts.module, json: opts.json, timeoutMs, goTimeoutMs });
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`gomodproxy: configuration error:\n${err.message.replace(/^/gm, '  ')}\n`);
    process.exit(2);
  }
  process.stderr.write(`gomodproxy: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
