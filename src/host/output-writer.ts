import type { HostToAgent } from '../protocol/host-messages.js';
import type { OutputStream } from '../protocol/task-types.js';

/** Above this many pending bytes a chunk is sent at once instead of at the next turn. */
const MAX_CHUNK = 64 * 1024;

/**
 * One task's stdout/stderr/log, as `output` messages. Consecutive small writes to the same stream
 * are coalesced until the next event-loop turn (or {@link MAX_CHUNK}); a write to another stream
 * sends what is pending first, so the agent sees every byte in the order it was written.
 */
export class OutputWriter {
  private stream: OutputStream = 'stdout';
  private chunks: Buffer[] = [];
  private size = 0;
  private scheduled = false;
  private closed = false;

  constructor(
    private readonly taskId: string,
    private readonly send: (msg: HostToAgent) => void,
  ) {}

  write(stream: OutputStream, data: string | Uint8Array): void {
    if (this.closed) return;
    // Copy Uint8Arrays: the caller may reuse its buffer before the chunk is sent.
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
    if (buf.length === 0) return;
    if (stream !== this.stream && this.size > 0) this.flush();
    this.stream = stream;
    this.chunks.push(buf);
    this.size += buf.length;
    if (this.size >= MAX_CHUNK) {
      this.flush();
    } else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.onImmediate);
    }
  }

  /** Sends what is pending now. */
  flush(): void {
    if (this.size === 0) return;
    const data = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    this.chunks = [];
    this.size = 0;
    this.send({ t: 'output', taskId: this.taskId, stream: this.stream, data });
  }

  /** Flushes and drops every later write (an operation that outlives its task). */
  close(): void {
    this.flush();
    this.closed = true;
  }

  private readonly onImmediate = (): void => {
    this.scheduled = false;
    this.flush();
  };
}
