/**
 * The coordinator's side of the handshake: hello -> challenge -> auth (our proof of the access
 * key, and the instance claim signed with the instance key) -> ready (the agent's proof, checked
 * before anything else is believed). See handshake.ts for the proofs and messages.ts for the
 * messages.
 */
import type { FramedConnection } from '../connection.js';
import { isErrorCode, MusterError } from '../errors.js';
import {
  agentProof,
  channelBinding,
  clientProof,
  newNonce,
  proofsEqual,
  rekey,
  signClaim,
} from '../handshake.js';
import {
  challengeSchema,
  PROTOCOL_MAX,
  PROTOCOL_MIN,
  readySchema,
  type ClientWireMessage,
} from '../messages.js';
import type { AgentClientOptions } from './agent-client-options.js';
import type { FrameRouter } from './frame-router.js';

/** What the agent said about itself and this connection once both sides proved the key. */
export interface HandshakeResult {
  instance: { key: string; product: string; dir: string };
  agentId: string;
  agentVersion: string;
  protocol: number;
  cores: number | undefined;
  /** The agent's machine (src/common/boot-id.ts), when it says (agents since issue 13). */
  bootId: string | undefined;
  lease: LeaseInfo | undefined;
  /** The key this handshake makes from the one it proved (see rekey in handshake.ts). */
  rekeyed: string;
}

export interface LeaseInfo {
  held: boolean;
  term: number;
  expiresInMs: number;
}

export async function handshake(
  conn: FramedConnection<ClientWireMessage>,
  router: FrameRouter,
  options: AgentClientOptions,
  /** The protocol versions to offer (tests offer impossible ones). */
  offer: { min: number; max: number } = { min: PROTOCOL_MIN, max: PROTOCOL_MAX },
  /** The TLS session's keying material, when the link runs over a stream on top of TLS. */
  binding: string = channelBinding(conn.socket),
): Promise<HandshakeResult> {
  const clientNonce = newNonce();
  const timeoutMs = options.connectTimeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    let step: 'challenge' | 'ready' = 'challenge';
    let challenge:
      { protocol: number; agentId: string; agentVersion: string; nonce: string } | undefined;
    const timer = setTimeout(
      () => fail(new MusterError('HANDSHAKE_TIMEOUT', 'the agent did not complete the handshake')),
      timeoutMs,
    );
    const fail = (err: MusterError): void => {
      clearTimeout(timer);
      router.handler = () => undefined;
      reject(err);
    };
    let framingError: MusterError | undefined;
    router.onProtocolError = (err) => {
      framingError = new MusterError(
        err.code,
        `the agent sent something that is not a Muster frame (is it a Muster agent, with the same TLS setting?): ${err.message}`,
      );
    };
    router.onClose = () =>
      fail(
        framingError ??
          new MusterError(
            'CONNECTION_CLOSED',
            'the agent closed the connection during the handshake',
          ),
      );
    router.handler = (frame) => {
      if (frame.kind !== 'json')
        return fail(new MusterError('UNEXPECTED_MESSAGE', 'binary frame during the handshake'));
      const value = frame.value as {
        t?: unknown;
        code?: unknown;
        message?: unknown;
        details?: unknown;
      };
      if (value?.t === 'error') {
        const code =
          typeof value.code === 'string' && isErrorCode(value.code) ? value.code : 'INTERNAL';
        return fail(
          new MusterError(
            code,
            String(value.message),
            value.details as Record<string, unknown> | undefined,
          ),
        );
      }
      if (step === 'challenge') {
        const parsed = challengeSchema.safeParse(value);
        if (!parsed.success)
          return fail(new MusterError('UNEXPECTED_MESSAGE', 'expected "challenge"'));
        const c = parsed.data;
        challenge = c;
        step = 'ready';
        const claims = options.instanceId !== undefined || options.clusterId !== undefined;
        if (claims && options.instanceKey === undefined)
          return fail(
            new MusterError('INSTANCE_CLAIM_INVALID', 'an instance id needs the instance key'),
          );
        conn.sendJson({
          t: 'auth',
          proof: clientProof(options.accessKey, clientNonce, c.nonce, binding),
          ...(claims && options.instanceKey !== undefined
            ? {
                claim: signClaim(options.instanceKey, {
                  product: options.product,
                  instanceId: options.instanceId,
                  clusterId: options.clusterId,
                  clientNonce,
                  agentNonce: c.nonce,
                  binding,
                }),
              }
            : {}),
        });
        return;
      }
      const parsed = readySchema.safeParse(value);
      if (!parsed.success) return fail(new MusterError('UNEXPECTED_MESSAGE', 'expected "ready"'));
      const agentNonce = challenge!.nonce;
      const proof = parsed.data.proof;
      if (
        proof === undefined ||
        !proofsEqual(proof, agentProof(options.accessKey, clientNonce, agentNonce, binding))
      ) {
        conn.close();
        return fail(
          new MusterError(
            'AUTH_FAILED',
            'the agent could not prove it knows the access key (wrong key, or not the agent you meant)',
          ),
        );
      }
      clearTimeout(timer);
      resolve({
        instance: parsed.data.instance,
        agentId: challenge!.agentId,
        agentVersion: challenge!.agentVersion,
        protocol: challenge!.protocol,
        cores: parsed.data.capacity?.cores,
        bootId: parsed.data.capacity?.bootId,
        lease: parsed.data.lease,
        rekeyed: rekey(options.accessKey, clientNonce, agentNonce, binding),
      });
    };
    conn.sendJson({
      t: 'hello',
      protocol: offer,
      product: options.product,
      productVersion: options.productVersion,
      ...(options.instanceId === undefined ? {} : { instanceId: options.instanceId }),
      ...(options.clusterId === undefined ? {} : { clusterId: options.clusterId }),
      ...(options.holderId === undefined ? {} : { holderId: options.holderId }),
      ...(options.leaseTerm === undefined ? {} : { leaseTerm: options.leaseTerm }),
      nonce: clientNonce,
    });
  });
}
