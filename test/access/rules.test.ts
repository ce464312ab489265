// Authorization rules: anonymous, authenticated, user:, group:, scope:.
import { describe, expect, it } from 'vitest';
import { ANONYMOUS, RuleError, allows, compileRules, isRule, type Principal } from '../../src/access/index.js';

const alice: Principal = { name: 'alice', groups: ['devs', 'readers'], scopes: [], method: 'ldap' };
const ci: Principal = { name: 'ci-bot', groups: [], scopes: ['modules:read'], method: 'token' };

describe('allows', () => {
  it('anonymous admits everyone; authenticated anyone signed in', () => {
    expect(allows(['anonymous'], ANONYMOUS)).toBe(true);
    expect(allows(['anonymous'], alice)).toBe(true);
    expect(allows(['authenticated'], ANONYMOUS)).toBe(false);
    expect(allows(['authenticated'], ci)).toBe(true);
  });

  it('user:, group: and scope: match names, groups and scopes; any rule suffices', () => {
    const rules = compileRules(['user:bob', 'group:devs', 'scope:modules:read']);
    expect(allows(rules, alice)).toBe(true);
    expect(allows(rules, ci)).toBe(true);
    expect(allows(rules, { ...alice, name: 'bob', groups: [] })).toBe(true);
    expect(allows(rules, { name: 'eve', groups: ['outsiders'], scopes: ['other'], method: 'jwt' })).toBe(false);
    expect(allows(['group:readers'], alice)).toBe(true);
  });

  it('never lets the anonymous principal through a named rule, whatever its name', () => {
    expect(allows(['user:anonymous'], ANONYMOUS)).toBe(false);
  });

  it('an empty list admits nobody', () => {
    expect(allows([], alice)).toBe(false);
    expect(allows(compileRules([]), ANONYMOUS)).toBe(false);
  });

  it('refuses a bad rule naming it', () => {
    expect(isRule('group:devs')).toBe(true);
    expect(isRule('group:')).toBe(false);
    expect(isRule('admins')).toBe(false);
    expect(() => compileRules(['authenticated', 'admins'])).toThrow(RuleError);
    expect(() => allows(['role:x'], alice)).toThrow(/access rule "role:x" is not one of anonymous, authenticated/);
  });

  it('compiles a plain list once, however often it is checked; a check reads only what the rules ask about', () => {
    // What made a million checks cheap, stated as work: rule strings are parsed on the first
    // check of a list and never again, and a check looks at no group or scope unless a rule names one.
    let ruleReads = 0;
    const list = new Proxy(['user:x', 'user:y', 'group:a', 'group:b', 'scope:s'], {
      get(target, key, receiver) {
        if (typeof key === 'string' && /^\d+$/.test(key)) ruleReads++;
        return Reflect.get(target, key, receiver) as unknown;
      },
    });
    const p: Principal = { name: 'z', groups: ['c', 'd', 'b'], scopes: [], method: 'ldap' };
    expect(allows(list, p)).toBe(true);
    const compiling = ruleReads;
    expect(compiling).toBeGreaterThanOrEqual(5);
    let n = 0;
    for (let i = 0; i < 1_000_000; i++) if (allows(list, p)) n++;
    expect(n).toBe(1_000_000);
    expect(ruleReads).toBe(compiling);

    const counted = (values: string[]): { list: string[]; reads: () => number } => {
      let reads = 0;
      const proxy = new Proxy(values, {
        get(target, key, receiver) {
          if (key === Symbol.iterator || key === 'length' || (typeof key === 'string' && /^\d+$/.test(key))) reads++;
          return Reflect.get(target, key, receiver) as unknown;
        },
      });
      return { list: proxy, reads: () => reads };
    };
    const groups = counted(['c', 'd', 'b']);
    const scopes = counted(['s']);
    const bob: Principal = { name: 'bob', groups: groups.list, scopes: scopes.list, method: 'token' };
    expect(allows(compileRules(['user:bob', 'group:a', 'scope:s']), bob)).toBe(true); // by name: groups and scopes unread
    expect(allows(compileRules(['user:x']), bob)).toBe(false); // no group or scope rule: unread
    expect(groups.reads() + scopes.reads()).toBe(0);
    expect(allows(compileRules(['scope:s']), bob)).toBe(true);
    expect(groups.reads()).toBe(0);
    expect(scopes.reads()).toBeGreaterThan(0);
  });
});
