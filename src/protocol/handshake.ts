/**
 * Mutual challenge-response on the agent's access key. Each side sends a fresh random nonce and
 * proves knowledge of the key with an HMAC over both nonces, a role label (so a proof cannot be
 * reflected back) and, on TLS, keying material exported from the session (so a proof cannot be
 * relayed through a man in the middle). The key itself never crosses the wire. The coordinator
 * proves first: an agent answers only a peer that knows the key, so connecting to an agent gives
 * nobody an HMAC to guess the key against offline.
 *
 * On top, an instance claim: a coordinator signs the handshake with its instance key (Ed25519),
 * and the agent binds the instance (and the cluster's lease) to the first public key that claims
 * it. Other holders of the access key cannot enter that instance.
 */
import {
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  timingSafeEqual,
  verify,
} from 'node:crypto';
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

/**
 * A key both sides of one authenticated handshake can compute and nobody else: the key it proved,
 * mixed with that handshake's nonces and TLS binding (which only its two ends saw). An agent that
 * dials out replaces the key derived from its join token with this one at its join
 * (src/protocol/outbound.ts), so a token that leaks later opens no agent that joined with it.
 */
export function rekey(
  key: string,
  clientNonce: string,
  agentNonce: string,
  binding: string,
): string {
  return hmac(key, ['muster-rekey-v1', clientNonce, agentNonce, binding]);
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

// ---- instance claims -------------------------------------------------------------------------

/** A coordinator's instance key pair (Ed25519): the private half never leaves it and its backup. */
export function newInstanceKey(): string {
  const { privateKey } = generateKeyPairSync('ed25519');
  return privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

/** A short, printable fingerprint of a recorded instance public key. */
export function instanceKeyFingerprint(publicKey: string): string {
  return `sha256:${createHash('sha256').update(publicKey, 'base64').digest('hex').slice(0, 32)}`;
}

/**
 * What a claim signs: everything the agent bases its decision on, both nonces and the TLS channel,
 * so a claim cannot be replayed on another connection or for another instance or cluster.
 */
function claimData(parts: {
  product: string;
  instanceId: string | undefined;
  clusterId: string | undefined;
  clientNonce: string;
  agentNonce: string;
  binding: string;
}): Buffer {
  return Buffer.from(
    [
      'muster-instance-claim-v1',
      parts.product,
      parts.instanceId ?? '',
      parts.clusterId ?? '',
      parts.clientNonce,
      parts.agentNonce,
      parts.binding,
    ].join('\n'),
  );
}

export function signClaim(
  privateKeyPem: string,
  parts: Parameters<typeof claimData>[0],
): { publicKey: string; signature: string } {
  const key = createPrivateKey(privateKeyPem);
  return {
    publicKey: createPublicKey(key).export({ format: 'der', type: 'spki' }).toString('base64'),
    signature: sign(null, claimData(parts), key).toString('base64'),
  };
}

/** Whether `signature` is the holder of `publicKey` signing this handshake; never throws. */
export function verifyClaim(
  publicKey: string,
  signature: string,
  parts: Parameters<typeof claimData>[0],
): boolean {
  try {
    const key = createPublicKey({
      key: Buffer.from(publicKey, 'base64'),
      format: 'der',
      type: 'spki',
    });
    if (key.asymmetricKeyType !== 'ed25519') return false;
    return verify(null, claimData(parts), key, Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}
