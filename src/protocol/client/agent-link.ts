/**
 * An authenticated connection to an agent, not yet anyone's: dial (TLS with the pinned
 * fingerprint), frame, and complete the handshake. The AgentClient is built on one. An agent
 * that dialed out (outbound.ts) brings its own stream: openAgentLinkOver frames that instead.
 */
import type { Duplex } from 'node:stream';
import { FramedConnection } from '../connection.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../framing.js';
import { channelBinding } from '../handshake.js';
import type { ClientWireMessage } from '../messages.js';
import type { AgentClientOptions } from './agent-client-options.js';
import { handshake, type HandshakeResult } from './client-handshake.js';
import { dial } from './dial.js';
import { FrameRouter } from './frame-router.js';

export interface AgentLink {
  conn: FramedConnection<ClientWireMessage>;
  /** Hand the connection's frames to whoever owns the link now. */
  router: FrameRouter;
  hello: HandshakeResult;
}

export async function openAgentLink(
  options: AgentClientOptions,
  /** The protocol versions to offer; by default every one this side speaks. */
  offer?: { min: number; max: number },
): Promise<AgentLink> {
  const socket = await dial(options);
  return openAgentLinkOver(socket, channelBinding(socket), options, offer);
}

/**
 * The handshake over a stream that is already open: a socket dialed here, or the WebSocket an
 * agent opened to this coordinator, whose proofs bind `binding` (the TLS session under it).
 */
export async function openAgentLinkOver(
  socket: Duplex,
  binding: string,
  options: AgentClientOptions,
  offer?: { min: number; max: number },
): Promise<AgentLink> {
  const router = new FrameRouter();
  const conn = new FramedConnection<ClientWireMessage>(
    socket,
    {
      onFrame: (frame) => router.handler(frame),
      onProtocolError: (err) => router.onProtocolError(err),
      onClose: () => router.onClose(),
    },
    options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
  );
  try {
    return { conn, router, hello: await handshake(conn, router, options, offer, binding) };
  } catch (err) {
    conn.destroy();
    throw err;
  }
}
