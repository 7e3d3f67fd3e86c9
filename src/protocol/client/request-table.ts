/**
 * Request correlation on one connection: the client picks each request's id, and every answer
 * (JSON with `re`, or a blob chunk) goes to the request that id belongs to until one of them is
 * its last. Requests time out unless they stream (uploads, downloads); a closed connection fails
 * every request still open.
 */
import type { FramedConnection } from '../connection.js';
import { MusterError } from '../errors.js';
import type {
  AgentMessage,
  BlobChunkHeader,
  ClientRequest,
  ClientWireMessage,
} from '../messages.js';

export interface PendingRequest {
  /** An answer to this request; returns true when it was the last one. */
  onMessage(message: AgentMessage): boolean;
  onBlob?(header: BlobChunkHeader, data: Buffer): void;
  reject(err: MusterError): void;
  timer?: NodeJS.Timeout;
}

export class RequestTable {
  private nextId = 1;
  private readonly pending = new Map<number, PendingRequest>();

  constructor(
    /** Only its typed send: a unit test passes a fake. */
    private readonly conn: Pick<FramedConnection<ClientWireMessage>, 'sendJson'>,
    /** Why the connection failed, once it has: new requests fail with that at once. */
    private readonly failedWith: () => MusterError | undefined,
  ) {}

  /** The next request id (ids are never reused on a connection). */
  takeId(): number {
    return this.nextId++;
  }

  /**
   * Sends `message` as request `id`; resolves when `isFinal` accepts an answer, rejects on an
   * error answer, on a close, or after `timeoutMs` (0: never).
   */
  send(
    id: number,
    message: ClientRequest,
    isFinal: (m: AgentMessage) => boolean,
    timeoutMs: number,
  ): Promise<void> {
    const failed = this.failedWith();
    if (failed) return Promise.reject(failed);
    return new Promise<void>((resolve, reject) => {
      const pending: PendingRequest = {
        onMessage: (m) => {
          if (!isFinal(m)) return false;
          if (pending.timer) clearTimeout(pending.timer);
          resolve();
          return true;
        },
        reject: (err) => {
          if (pending.timer) clearTimeout(pending.timer);
          this.pending.delete(id);
          reject(err);
        },
      };
      if (timeoutMs > 0) {
        pending.timer = setTimeout(
          () =>
            pending.reject(
              new MusterError('REQUEST_TIMEOUT', `the agent did not answer in ${timeoutMs} ms`),
            ),
          timeoutMs,
        );
      }
      this.pending.set(id, pending);
      this.conn.sendJson({ ...message, id });
    });
  }

  /** Routes answers with `re: id` to `pending` (for requests their caller sends itself). */
  expect(id: number, pending: PendingRequest): void {
    this.pending.set(id, pending);
  }

  isOpen(id: number): boolean {
    return this.pending.has(id);
  }

  forget(id: number): void {
    this.pending.delete(id);
  }

  /** An answer from the agent; the request is done once it says this was its last answer. */
  answer(re: number, message: AgentMessage): void {
    const pending = this.pending.get(re);
    if (pending?.onMessage(message)) this.pending.delete(re);
  }

  chunk(header: BlobChunkHeader, data: Buffer): void {
    this.pending.get(header.re)?.onBlob?.(header, data);
  }

  fail(re: number, err: MusterError): void {
    this.pending.get(re)?.reject(err);
  }

  failAll(err: MusterError): void {
    for (const pending of [...this.pending.values()]) pending.reject(err);
    this.pending.clear();
  }
}
