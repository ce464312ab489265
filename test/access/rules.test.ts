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

  it('is fast: a million checks well under a second', () => {
    const rules = compileRules(['user:x', 'user:y', 'group:a', 'group:b', 'scope:s']);
    const p: Principal = { name: 'z', groups: ['c', 'd', 'b'], scopes: [], method: 'ldap' };
    const t = performance.now();
    let n = 0;
    for (let i = 0; i < 1_000_000; i++) if (allows(rules, p)) n++;
    expect(n).toBe(1_000_000);
    expect(performance.now() - t).toBeLessThan(1000);
  });
});
