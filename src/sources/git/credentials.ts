// Credentials for git remotes, per host. They reach git only through a credential helper that
// gomodproxy writes (for https/http) or an ssh config (for ssh keys), configured through
// GIT_CONFIG_COUNT/KEY/VALUE variables scoped to `credential.<scheme>://<host>`: never on a
// command line, never in a log. The secrets themselves live only in the environment of our own
// git processes, and the helper answers only for the exact host it was asked about, so a
// credential for one host is never sent to another (not even after an insteadOf rewrite or a
// redirect: git asks the helper with the host it is actually talking to).
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface GitCredential {
  /** host or host:port, exactly as in the remote URL git uses (after insteadOf). */
  host: string;
  username?: string;
  password?: string;
  /** A token: sent as the password, with `username` or "x-access-token". */
  token?: string;
  /** Private key file for ssh:// and scp-like (git@host:path) remotes of this host. */
  sshKey?: string;
  /** Also answer for http:// (plain text) remotes of this host; off by default. */
  allowHttp?: boolean;
}

const ENV_PREFIX = 'GMP_GIT_CRED_';

const HELPER = `#!/bin/sh
# gomodproxy's git credential helper: answers "get" with the credential configured for the
# exact host git asks about; the secrets come from this process's environment, never argv.
[ "$1" = get ] || exit 0
host=
protocol=
while IFS= read -r line; do
  [ -z "$line" ] && break
  case "$line" in
    host=*) host=\${line#host=} ;;
    protocol=*) protocol=\${line#protocol=} ;;
  esac
done
i=0
n=\${${ENV_PREFIX}COUNT:-0}
while [ "$i" -lt "$n" ]; do
  eval "h=\\\${${ENV_PREFIX}\${i}_HOST}"
  eval "s=\\\${${ENV_PREFIX}\${i}_SCHEMES}"
  if [ "$h" = "$host" ]; then
    case " $s " in
      *" $protocol "*)
        eval "u=\\\${${ENV_PREFIX}\${i}_USER}"
        eval "p=\\\${${ENV_PREFIX}\${i}_PASS}"
        printf 'username=%s\\npassword=%s\\n' "$u" "$p"
        exit 0 ;;
    esac
  fi
  i=$((i+1))
done
exit 0
`;

export class Credentials {
  private helperPath: string | undefined;
  private sshConfigPath: string | undefined;
  private readonly list: GitCredential[];

  constructor(
    list: readonly GitCredential[],
    private readonly dir: string,
  ) {
    for (const c of list) {
      for (const [k, v] of Object.entries(c)) {
        if (typeof v === 'string' && /[\r\n\0]/.test(v)) throw new Error(`git.credentials for ${c.host}: ${k} must not contain a line break`);
      }
      if (!/^[A-Za-z0-9.-]+(:\d+)?$/.test(c.host)) throw new Error(`git.credentials: host "${c.host}" must be a host name, optionally with :port`);
    }
    this.list = [...list];
  }

  get hosts(): string[] {
    return this.list.map((c) => c.host);
  }

  /** Writes the helper script and ssh config (once, at start). */
  async prepare(): Promise<void> {
    const withSecret = this.list.filter((c) => c.password !== undefined || c.token !== undefined);
    const withKey = this.list.filter((c) => c.sshKey !== undefined);
    if (withSecret.length === 0 && withKey.length === 0) return;
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
    if (withSecret.length > 0) {
      this.helperPath = path.join(this.dir, 'git-credential-gomodproxy');
      await writeFile(this.helperPath, HELPER, { mode: 0o700 });
      await chmod(this.helperPath, 0o700);
    }
    if (withKey.length > 0) {
      let text = "# Written by gomodproxy from git.credentials: one key per host, then the user's own ssh config.\n";
      for (const c of withKey) {
        const host = c.host.replace(/:\d+$/, '');
        text += `Host ${host}\n  IdentityFile "${path.resolve(c.sshKey as string)}"\n  IdentitiesOnly yes\n`;
        const port = /:(\d+)$/.exec(c.host)?.[1];
        if (port) text += `  Port ${port}\n`;
      }
      text += 'Match all\n  Include ~/.ssh/config\n';
      this.sshConfigPath = path.join(this.dir, 'ssh_config');
      await writeFile(this.sshConfigPath, text, { mode: 0o600 });
    }
  }

  /**
   * The environment for a git process: base plus the helper configuration. Existing
   * GIT_CONFIG_COUNT entries (the operator's own) are kept, ours appended after them.
   */
  env(base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...base };
    if (this.helperPath) {
      let n = Number(env.GIT_CONFIG_COUNT ?? '0');
      if (!Number.isInteger(n) || n < 0) n = 0;
      const add = (key: string, value: string): void => {
        env[`GIT_CONFIG_KEY_${n}`] = key;
        env[`GIT_CONFIG_VALUE_${n}`] = value;
        n++;
      };
      let i = 0;
      for (const c of this.list) {
        const secret = c.token ?? c.password;
        if (secret === undefined) continue;
        const schemes = c.allowHttp ? ['https', 'http'] : ['https'];
        env[`${ENV_PREFIX}${i}_HOST`] = c.host;
        env[`${ENV_PREFIX}${i}_SCHEMES`] = schemes.join(' ');
        env[`${ENV_PREFIX}${i}_USER`] = c.username ?? (c.token !== undefined ? 'x-access-token' : '');
        env[`${ENV_PREFIX}${i}_PASS`] = secret;
        i++;
        for (const s of schemes) {
          // The empty value resets the helper list for this URL, so ours is the one asked.
          add(`credential.${s}://${c.host}.helper`, '');
          add(`credential.${s}://${c.host}.helper`, this.helperPath);
        }
      }
      env[`${ENV_PREFIX}COUNT`] = String(i);
      env.GIT_CONFIG_COUNT = String(n);
    }
    if (this.sshConfigPath && env.GIT_SSH_COMMAND === undefined && env.GIT_SSH === undefined) {
      env.GIT_SSH_COMMAND = `ssh -F '${this.sshConfigPath.replace(/'/g, `'\\''`)}'`;
    }
    return env;
  }

  /** Whether ssh keys are configured but the operator's GIT_SSH_COMMAND/GIT_SSH overrides them. */
  sshOverridden(base: NodeJS.ProcessEnv): boolean {
    return this.list.some((c) => c.sshKey !== undefined) && (base.GIT_SSH_COMMAND !== undefined || base.GIT_SSH !== undefined);
  }
}
