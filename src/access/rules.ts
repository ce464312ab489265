// Authorization: may this principal do it? A rule list grants access if any rule matches:
//   anonymous      everyone, signed in or not
//   authenticated  anyone who signed in, by any method
//   user:<name>    that user
//   group:<name>   members of that group (LDAP groups, JWT groups claim, mTLS group table)
//   scope:<name>   credentials carrying that scope (API token scopes, JWT scope/scp)
// Lists are compiled once into sets, so a check is a few lookups with no allocation.
import type { Principal } from './types.js';

export type Rule = 'anonymous' | 'authenticated' | `user:${string}` | `group:${string}` | `scope:${string}`;

export interface CompiledRules {
  readonly source: readonly string[];
  readonly anyone: boolean;
  readonly authenticated: boolean;
  readonly users: ReadonlySet<string>;
  readonly groups: ReadonlySet<string>;
  readonly scopes: ReadonlySet<string>;
}

export class RuleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RuleError';
  }
}

/** Whether a string is a valid rule (for config validation). */
export function isRule(value: string): value is Rule {
  return value === 'anonymous' || value === 'authenticated' || /^(user|group|scope):\S.*$/.test(value);
}

/** Compiles a rule list; an empty list allows nobody. Throws RuleError naming a bad rule. */
export function compileRules(rules: readonly string[]): CompiledRules {
  const users = new Set<string>();
  const groups = new Set<string>();
  const scopes = new Set<string>();
  let anyone = false;
  let authenticated = false;
  for (const rule of rules) {
    if (!isRule(rule)) {
      throw new RuleError(`access rule "${rule}" is not one of anonymous, authenticated, user:<name>, group:<name>, scope:<name>`);
    }
    if (rule === 'anonymous') anyone = true;
    else if (rule === 'authenticated') authenticated = true;
    else {
      const colon = rule.indexOf(':');
      const kind = rule.slice(0, colon);
      const name = rule.slice(colon + 1);
      (kind === 'user' ? users : kind === 'group' ? groups : scopes).add(name);
    }
  }
  return Object.freeze({ source: Object.freeze([...rules]), anyone, authenticated, users, groups, scopes });
}

const compiledLists = new WeakMap<readonly string[], CompiledRules>();

/** Whether any rule grants the principal access. Pass compiled rules on the hot path; a plain list is compiled once per array. */
export function allows(rules: CompiledRules | readonly string[], principal: Principal): boolean {
  let r: CompiledRules;
  if (isCompiled(rules)) r = rules;
  else {
    let c = compiledLists.get(rules);
    if (!c) {
      c = compileRules(rules);
      compiledLists.set(rules, c);
    }
    r = c;
  }
  if (r.anyone) return true;
  if (principal.method === 'anonymous') return false;
  if (r.authenticated) return true;
  if (r.users.has(principal.name)) return true;
  if (r.groups.size > 0) for (const g of principal.groups) if (r.groups.has(g)) return true;
  if (r.scopes.size > 0) for (const s of principal.scopes) if (r.scopes.has(s)) return true;
  return false;
}

function isCompiled(rules: CompiledRules | readonly string[]): rules is CompiledRules {
  return !Array.isArray(rules);
}
