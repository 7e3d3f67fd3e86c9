/**
 * How long a client may take to send a request (head and body) before its connection is cut.
 *
 * Node's own `requestTimeout` is one limit for every request on the server, so it cannot tell a
 * login trickled in at a byte every 20 s from a 1 GiB blob on a slow link. Here every request
 * gets `baseMs` from its start; a request from an admin (who may upload blobs and submit large
 * plans) gets more in proportion to the body it announces (or may send), at MIN_RATE. Only
 * receiving is timed: once the request is complete, answering may take as long as it takes (the
 * event stream, the backups' long poll, large downloads).
 */
import type { IncomingMessage } from 'node:http';

/** The slowest upload an admin's request is still given time for, in bytes a second. */
export const MIN_UPLOAD_RATE = 64 * 1024;

export class BodyDeadlines {
  private readonly timers = new WeakMap<
    IncomingMessage,
    { started: number; timer: NodeJS.Timeout }
  >();

  constructor(private readonly baseMs: number) {}

  /** Starts the clock of a request that has just arrived. */
  start(raw: IncomingMessage, now = Date.now()): void {
    this.arm(raw, now, this.baseMs);
  }

  /** Gives an authenticated writer's request time for `bytes` more at MIN_UPLOAD_RATE. */
  extend(raw: IncomingMessage, bytes: number): void {
    const current = this.timers.get(raw);
    if (!current || bytes <= 0) return;
    this.arm(raw, current.started, this.baseMs + Math.ceil((bytes / MIN_UPLOAD_RATE) * 1000));
  }

  private arm(raw: IncomingMessage, started: number, allowedMs: number): void {
    const previous = this.timers.get(raw);
    if (previous) clearTimeout(previous.timer);
    if (raw.complete) return;
    const timer = setTimeout(
      () => {
        this.timers.delete(raw);
        // The request is still arriving: drop the connection (an answer could not be read by a
        // client that is still sending, and the socket is what the slow client holds).
        if (!raw.complete) raw.socket.destroy();
      },
      Math.max(0, started + allowedMs - Date.now()),
    );
    timer.unref();
    this.timers.set(raw, { started, timer });
    if (!previous) {
      raw.once('close', () => {
        const current = this.timers.get(raw);
        if (current) clearTimeout(current.timer);
        this.timers.delete(raw);
      });
    }
  }
}
