/**
 * A framed, message-oriented connection over any byte stream (TLS or TCP socket). It decodes
 * frames, batches writes made in one tick into one syscall, exposes back-pressure, and closes
 * with an error frame when the peer sends something that cannot be decoded.
 *
 * It is typed by what its side sends (`Out`): the coordinator's end is a
 * FramedConnection<ClientWireMessage>, the agent's a FramedConnection<AgentWireMessage>, so
 * neither can send a message of the other side or one the protocol does not have. Binary frames
 * carry blob chunks in either direction.
 */
import type { Duplex } from 'node:stream';
import { MusterError, toMusterError } from './errors.js';
import {
  DEFAULT_MAX_FRAME_BYTES,
  encodeBinaryFramePrefix,
  encodeJsonFrame,
  FrameDecoder,
  type Frame,
} from './framing.js';
import type { AnyWireMessage, BlobChunkHeader, ErrorFrame } from './messages.js';

export interface FramedConnectionEvents {
  onFrame(frame: Frame): void;
  /** A framing error: the connection is being closed after an error frame was sent. */
  onProtocolError?(err: MusterError): void;
  onClose(hadError: boolean): void;
}

export class FramedConnection<Out extends AnyWireMessage> {
  private readonly decoder: FrameDecoder;
  private corked = false;
  private closed = false;
  /** Bytes read from the peer, and bytes of blob chunks the socket has written out. */
  private bytesIn = 0;
  private blobBytesOut = 0;

  constructor(
    readonly socket: Duplex,
    private readonly events: FramedConnectionEvents,
    maxFrameBytes = DEFAULT_MAX_FRAME_BYTES,
  ) {
    this.decoder = new FrameDecoder(maxFrameBytes);
    socket.on('data', (chunk: Buffer) => {
      this.bytesIn += chunk.length;
      this.onData(chunk);
    });
    socket.on('error', () => {
      // 'close' follows; nothing else to do. Errors here are resets and broken pipes.
    });
    socket.on('close', (hadError: boolean) => {
      this.closed = true;
      this.events.onClose(hadError);
    });
  }

  get isClosed(): boolean {
    return this.closed || this.socket.destroyed;
  }

  /**
   * Grows while the peer is there: bytes read from it, plus bytes of blob chunks that left for
   * it (which stalls once a peer that reads nothing has filled the kernel's buffers). Small
   * frames of ours (pings) do not count: they leave whether the peer is there or not. A request
   * stuck behind a large transfer can wait while this moves (heartbeats).
   */
  get progress(): number {
    return this.bytesIn + this.blobBytesOut;
  }

  sendJson(message: Out): boolean {
    return this.writeJson(message);
  }

  sendBinary(header: BlobChunkHeader, data: Buffer): boolean {
    if (this.isClosed) return false;
    this.cork();
    this.socket.write(encodeBinaryFramePrefix(header, data.length));
    return this.socket.write(data, () => {
      this.blobBytesOut += data.length;
    });
  }

  /** Resolves once the socket's write buffer has drained (or the connection closed). */
  drained(): Promise<void> {
    if (this.isClosed || !this.socket.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  /** Sends an error frame (when given) and closes; destroys the socket if the peer lingers. */
  close(err?: MusterError): void {
    if (this.isClosed) return;
    if (err) this.writeJson({ t: 'error', ...err.toWire() } satisfies ErrorFrame);
    this.closed = true;
    this.socket.end();
    const timer = setTimeout(() => this.socket.destroy(), 2000);
    timer.unref();
  }

  /** Changes the frame size limit from the next frame on (see FrameDecoder). */
  setMaxFrameBytes(limit: number): void {
    this.decoder.setMaxFrameBytes(limit);
  }

  destroy(): void {
    this.closed = true;
    this.socket.destroy();
  }

  private writeJson(message: Out | ErrorFrame): boolean {
    if (this.isClosed) return false;
    this.cork();
    return this.socket.write(encodeJsonFrame(message));
  }

  private cork(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    process.nextTick(() => {
      this.corked = false;
      this.socket.uncork();
    });
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      const error = toMusterError(err, 'MALFORMED_FRAME');
      this.events.onProtocolError?.(error);
      this.close(error);
      return;
    }
    for (const frame of frames) {
      if (this.closed) return;
      try {
        this.events.onFrame(frame);
      } catch (err) {
        // A handler bug triggered by one peer's input ends that connection, never the process.
        const error = toMusterError(err);
        this.events.onProtocolError?.(error);
        this.close(new MusterError('INTERNAL', 'the peer could not handle a message; closing'));
        return;
      }
    }
  }
}
