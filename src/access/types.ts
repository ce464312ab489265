// The vocabulary of access control: who is asking (a Principal), what they presented
// (RequestCredentials), and the one failure that means "say who you are" (AuthError, 401).
import type { PeerCertificate } from 'node:tls';
import { oneLine } from '../errors.js';

export type AuthMethod = 'anonymous' | 'htpasswd' | 'ldap' | 'token' | 'jwt' | 'mtls';

/** Who is asking. Rules match on name (user:), groups (group:) and scopes (scope:). */
export interface Principal {
  name: string;
  groups: string[];
  scopes: string[];
  method: AuthMethod;
}

/**
 * What a request presented. Build it with `credentialsOf(req)` (credentials.ts), which only
 * passes on a client certificate that the TLS layer verified against the configured CA.
 */
export interface RequestCredentials {
  /** The Authorization header, verbatim. */
  authorization?: string;
  /** A client certificate the TLS layer has verified (socket.authorized); null or absent otherwise. */
  peerCertificate?: PeerCertificate | null;
  /** The client's address (after trusted X-Forwarded-For handling, which is the server's job). */
  remoteAddress?: string;
}

/** The one principal every request without credentials gets; frozen so no caller can promote it. */
export const ANONYMOUS: Principal = Object.freeze({
  name: 'anonymous',
  groups: Object.freeze([]) as unknown as string[],
  scopes: Object.freeze([]) as unknown as string[],
  method: 'anonymous',
}) as Principal;

/**
 * 401: the credentials are missing, malformed, wrong or expired. `message` is one line the go
 * command prints; `challenge` is the WWW-Authenticate value to send with it. It never repeats
 * what the client sent: a mistyped password must not come back in a response or a log.
 */
export class AuthError extends Error {
  readonly status = 401;
  readonly challenge: string;
  /** A short machine-readable reason for the audit log (e.g. "expired", "bad-password"). */
  readonly reason: string;

  constructor(message: string, challenge: string, reason = 'unauthenticated') {
    super(oneLine(message));
    this.name = 'AuthError';
    this.challenge = challenge;
    this.reason = reason;
  }
}
