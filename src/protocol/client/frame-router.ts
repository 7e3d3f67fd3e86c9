import type { MusterError } from '../errors.js';
import type { Frame } from '../framing.js';

/**
 * Where a connection's frames go: the handshake handles them first, then the AgentClient takes
 * over the same connection by replacing the handlers.
 */
export class FrameRouter {
  handler: (frame: Frame) => void = () => undefined;
  /** The agent sent bytes that are not a frame; the connection is being closed because of it. */
  onProtocolError: (err: MusterError) => void = () => undefined;
  onClose: () => void = () => undefined;
}
