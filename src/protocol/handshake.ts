/**
 * Mutual challenge-response on the agent's access key. Each side sends a fresh random nonce and
 * proves knowledge of the key with an HMAC over both nonces, a role label (so a proof cannot be
 * reflected back) and, on TLS, keying material exported from the session (so a proof cannot be
 * relayed through a man in the middle). The key itself never crosses the wire.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';

export function newNonce(): string {
  return randomBytes(32).toString('hex');
}

/** Keying material bound to this TLS session; '' on plain TCP. */
export function channelBinding(socket: Duplex): string {
  if (socket instanceof TLSSocket) {
    return socket
      .exportKeyingMaterial(32, 'EXPORTER-muster-auth-v1', Buffer.alloc(0))
      .toString('hex');
  }
  return '';
}

export function agentProof(
  key: string,
  clientNonce: string,
  agentNonce: string,
  binding: string,
): string {
  return hmac(key, ['muster-agent-v1', clientNonce, agentNonce, binding]);
}

export function clientProof(
  key: string,
  clientNonce: string,
  agentNonce: string,
  binding: string,
): string {
  return hmac(key, ['muster-coordinator-v1', agentNonce, clientNonce, binding]);
}

export function proofsEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

/** The highest version both ranges include, or undefined. */
export function negotiateProtocol(
  offered: { min: number; max: number },
  supported: { min: number; max: number },
): number | undefined {
  const high = Math.min(offered.max, supported.max);
  const low = Math.max(offered.min, supported.min);
  return high >= low ? high : undefined;
}

function hmac(key: string, parts: string[]): string {
  return createHmac('sha256', key).update(parts.join('\n')).digest('hex');
}
