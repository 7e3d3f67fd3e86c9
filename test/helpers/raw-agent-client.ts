/**
 * An AgentClient that can also misbehave, for tests of the agent under bad input: it sends raw
 * frames past the connection's typed send (what a well-behaved client never would), waits for
 * the answer to a request it sent that way, and offers any protocol range. The product's
 * AgentClient has none of this; it reaches the client's connection and request table as a
 * subclass.
 */
import { AgentClient, type AgentClientOptions } from '../../src/protocol/client/agent-client.js';
import { openAgentLink } from '../../src/protocol/client/agent-link.js';
import { encodeBinaryFramePrefix, encodeJsonFrame } from '../../src/protocol/framing.js';
import type { AgentMessage } from '../../src/protocol/messages.js';

export interface RawAgentClientOptions extends AgentClientOptions {
  /** The protocol range to offer in hello (default: the real one). */
  protocol?: { min: number; max: number };
}

export class RawAgentClient extends AgentClient {
  static async open(options: RawAgentClientOptions): Promise<RawAgentClient> {
    return new RawAgentClient(await openAgentLink(options, options.protocol), options);
  }

  /** Sends any JSON as a frame, written on the socket in order with the client's own frames. */
  sendRaw(message: object): void {
    this.conn.socket.write(encodeJsonFrame(message));
  }

  sendRawBinary(header: object, data: Buffer): void {
    this.conn.socket.write(encodeBinaryFramePrefix(header, data.length));
    this.conn.socket.write(data);
  }

  /** The next request id of this connection; with sendRaw, wait for its answer with awaitAnswer. */
  takeId(): number {
    return this.requests.takeId();
  }

  /** The first answer to request `id`; an error answer (or a close) rejects. */
  awaitAnswer(id: number): Promise<AgentMessage> {
    return new Promise((resolve, reject) => {
      this.requests.expect(id, {
        onMessage: (m) => {
          resolve(m);
          return true;
        },
        reject,
      });
    });
  }
}
