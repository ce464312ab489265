// The access layer's door: who is asking (authenticate), may they (rules), how much
// (ratelimit), and what they did (audit). See authenticate.ts for which check a credential gets.
export { ANONYMOUS, AuthError } from './types.js';
export type { AuthMethod, Principal, RequestCredentials } from './types.js';
export { credentialsOf, looksLikeJwt, verifiedPeerCertificate } from './credentials.js';
export { Authenticator, decodeBasic } from './authenticate.js';
export type { AuthenticatorOptions } from './authenticate.js';
export { allows, compileRules, isRule, RuleError } from './rules.js';
export type { CompiledRules, Rule } from './rules.js';
export { RateLimiter, ConcurrencyLimiter, TooManyRequestsError, clientKey, addressBlock } from './ratelimit.js';
export type { RateDecision, Release, RateLimiterOptions, ConcurrencyLimiterOptions } from './ratelimit.js';
export { AuditLog, auditLine, auditRecord, redactSecrets } from './audit.js';
export type { AuditEvent, AuditLogOptions } from './audit.js';
export { HtpasswdFile, HtpasswdError, parseHtpasswd } from './htpasswd.js';
export type { HtpasswdOptions } from './htpasswd.js';
// ldap.js and jwt.js are not re-exported as values: they bring ldapts and jose, which a process
// loads only when it is configured for them (create.ts imports them then).
export type { LdapAuthenticator, LdapUser, LdapVerdict } from './ldap.js';
export { TokenStore, TokenStoreError, tokensFile, looksLikeToken, tokenIdOf, TOKEN_PREFIX } from './tokens.js';
export type { TokenRecord, CreatedToken, TokenVerdict, TokenStoreOptions, CreateTokenInput } from './tokens.js';
export type { JwtVerifier, JwtVerdict } from './jwt.js';
export { MtlsMapper, parseSubjectAltName } from './mtls.js';
export { decide } from './gate.js';
export type { AccessDecision, Gate, GateOptions } from './gate.js';
export { createAccess, AccessConfigError } from './create.js';
export type { Access, CreateAccessOptions } from './create.js';
