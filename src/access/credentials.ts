// What a request presented, read from node:http. A client certificate is passed on only when
// the TLS layer verified it (socket.authorized): with requestCert and rejectUnauthorized off,
// an unverified certificate is just a claim anyone can make.
import type { IncomingMessage } from 'node:http';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { RequestCredentials } from './types.js';

// getPeerCertificate() builds a fresh object on each call; a keep-alive connection's certificate
// cannot change (TLS 1.3 has no renegotiation, and Node refuses client-initiated renegotiation by default).
const certBySocket = new WeakMap<TLSSocket, PeerCertificate | null>();

/** The verified client certificate of a TLS connection, or null. */
export function verifiedPeerCertificate(socket: TLSSocket): PeerCertificate | null {
  if (!socket.encrypted || !socket.authorized) return null;
  let cert = certBySocket.get(socket);
  if (cert === undefined) {
    const got = socket.getPeerCertificate();
    // An empty object means the client sent none.
    cert = got && Object.keys(got).length > 0 ? got : null;
    certBySocket.set(socket, cert);
  }
  return cert;
}

/**
 * The credentials of a request. `remoteAddress` overrides the socket's peer when the server has
 * resolved X-Forwarded-For from a trusted proxy.
 */
export function credentialsOf(req: IncomingMessage, remoteAddress?: string): RequestCredentials {
  const socket = req.socket as TLSSocket;
  const creds: RequestCredentials = { remoteAddress: remoteAddress ?? socket.remoteAddress };
  const authorization = req.headers.authorization;
  if (authorization !== undefined) creds.authorization = authorization;
  if (socket.encrypted) creds.peerCertificate = verifiedPeerCertificate(socket);
  return creds;
}

const JWT_SHAPE = /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** True for a compact JWS whose header is JSON (starts with {"): how a Basic password is told to be a JWT. */
export function looksLikeJwt(value: string): boolean {
  return value.length < 16_384 && JWT_SHAPE.test(value);
}
