/**
 * The agent's checks of a peer's handshake, apart from the session that keeps its state: which
 * protocol a hello gets, whether an auth proves the access key, whether its claim of an instance
 * or cluster id is signed by the key it names, and whether another coordinator's key holds that
 * instance or cluster already. Refusals come back as values; the session logs them (limited, for
 * peers that have not authenticated) and hangs up.
 */
import { MusterError } from '../protocol/errors.js';
import { clientProof, negotiateProtocol, proofsEqual, verifyClaim } from '../protocol/handshake.js';
import {
  authSchema,
  helloSchema,
  PROTOCOL_MAX,
  PROTOCOL_MIN,
  type Hello,
} from '../protocol/messages.js';
import type { InstanceRegistry } from './instances.js';
import type { LeaseTable } from './leases.js';
import { invalid } from './wire-errors.js';

export type HelloCheck = { hello: Hello; protocol: number } | { refused: MusterError };

export function checkHello(message: unknown): HelloCheck {
  const parsed = helloSchema.safeParse(message);
  if (!parsed.success) {
    const isHello = (message as { t?: unknown } | null)?.t === 'hello';
    return {
      refused: isHello
        ? invalid('hello', parsed.error)
        : new MusterError('UNEXPECTED_MESSAGE', 'the first message must be "hello"'),
    };
  }
  const hello = parsed.data;
  const protocol = negotiateProtocol(hello.protocol, { min: PROTOCOL_MIN, max: PROTOCOL_MAX });
  if (protocol === undefined) {
    return {
      refused: new MusterError(
        'UNSUPPORTED_PROTOCOL',
        `this agent speaks protocol ${PROTOCOL_MIN}..${PROTOCOL_MAX}, the peer offered ${hello.protocol.min}..${hello.protocol.max}`,
        { supported: { min: PROTOCOL_MIN, max: PROTOCOL_MAX }, offered: hello.protocol },
      ),
    };
  }
  return { hello, protocol };
}

export interface AuthCheckContext {
  /**
   * The keys a peer may prove: the agent's access key, or for a link it dialed the key it shares
   * with that cluster (and, until a handshake with it confirmed it, the one derived from its join
   * token).
   */
  accessKeys: readonly string[];
  instances: Pick<InstanceRegistry, 'boundKey'>;
  leases: Pick<LeaseTable, 'bind'>;
}

export type AuthCheck =
  /**
   * `claimKey`: the instance public key the peer proved, when it claimed an id; `accessKey`: the
   * one of accessKeys it proved.
   */
  | { claimKey: string | undefined; accessKey: string }
  | { refused: 'unexpected' | 'wrong-key' | 'invalid-claim'; error: MusterError }
  | { refused: 'bound'; what: 'instance' | 'cluster'; id: string; boundTo: string };

/**
 * Checks `auth` after `hello` and our challenge (`agentNonce`) on a channel with `binding`.
 * Accepting binds the hello's cluster to the claimed key when nobody holds it yet.
 */
export function checkAuth(
  ctx: AuthCheckContext,
  hello: Hello,
  agentNonce: string,
  binding: string,
  message: unknown,
): AuthCheck {
  const parsed = authSchema.safeParse(message);
  if (!parsed.success) {
    return {
      refused: 'unexpected',
      error: new MusterError('UNEXPECTED_MESSAGE', 'expected "auth" after "challenge"'),
    };
  }
  const accessKey = ctx.accessKeys.find((key) =>
    proofsEqual(parsed.data.proof, clientProof(key, hello.nonce, agentNonce, binding)),
  );
  if (accessKey === undefined) {
    return { refused: 'wrong-key', error: new MusterError('AUTH_FAILED', 'wrong access key') };
  }
  // An instance id or a cluster id is claimed by signing this handshake with the key it is
  // (or will be) bound to.
  const claimed = hello.instanceId !== undefined || hello.clusterId !== undefined;
  const claim = parsed.data.claim;
  if (claimed) {
    const valid =
      claim !== undefined &&
      verifyClaim(claim.publicKey, claim.signature, {
        product: hello.product,
        instanceId: hello.instanceId,
        clusterId: hello.clusterId,
        clientNonce: hello.nonce,
        agentNonce,
        binding,
      });
    if (!valid) {
      return {
        refused: 'invalid-claim',
        error: new MusterError(
          'INSTANCE_CLAIM_INVALID',
          'claiming an instance or cluster id needs a valid signature by the instance key',
        ),
      };
    }
  }
  const publicKey = claimed ? claim?.publicKey : undefined;
  // An instance bound to another key refuses first, so a refused claim binds nothing.
  const boundInstance =
    hello.instanceId === undefined
      ? undefined
      : ctx.instances.boundKey(hello.product, hello.instanceId);
  if (boundInstance !== undefined && boundInstance !== publicKey) {
    return {
      refused: 'bound',
      what: 'instance',
      id: `${hello.product}@id:${hello.instanceId}`,
      boundTo: boundInstance,
    };
  }
  if (hello.clusterId !== undefined && publicKey !== undefined) {
    const bound = ctx.leases.bind(hello.clusterId, publicKey);
    if (bound !== true) {
      return { refused: 'bound', what: 'cluster', id: hello.clusterId, boundTo: bound };
    }
  }
  return { claimKey: publicKey, accessKey };
}
