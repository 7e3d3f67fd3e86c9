/**
 * A parser for text/event-stream (the WHATWG "server-sent events" format): lines end with CRLF,
 * LF or CR; `:` starts a comment; `data:` lines accumulate (joined by LF); an empty line
 * dispatches; `event:`, `id:` and `retry:` set the event's type, the last event id and the
 * reconnection time. Chunks may split lines, CRLF pairs and UTF-8 sequences anywhere.
 */

export interface SseMessage {
  /** `message` when the event set no `event:` field. */
  event: string;
  data: string;
  /** The last event id seen so far (ids persist across events, as in EventSource). */
  id: string | undefined;
  /** A `retry:` the server sent with this event, in milliseconds. */
  retry: number | undefined;
}

export class SseParser {
  private readonly decoder = new TextDecoder('utf-8');
  private buffer = '';
  private started = false;
  /** The previous chunk ended with CR: an LF starting the next one belongs to it. */
  private pendingCr = false;
  private eventType = '';
  private data: string[] = [];
  private hasData = false;
  private lastId: string | undefined;
  private retry: number | undefined;

  /** Feeds a chunk; returns the events it completed. */
  push(chunk: Uint8Array | string): SseMessage[] {
    let text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    if (!this.started && text.length > 0) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (text.length === 0) return [];
    if (this.pendingCr && text.startsWith('\n')) text = text.slice(1);
    this.pendingCr = false;
    this.buffer += text;
    const out: SseMessage[] = [];
    let start = 0;
    for (;;) {
      const cr = this.buffer.indexOf('\r', start);
      const lf = this.buffer.indexOf('\n', start);
      if (cr < 0 && lf < 0) break;
      let end: number;
      let next: number;
      if (cr >= 0 && (lf < 0 || cr < lf)) {
        end = cr;
        if (cr + 1 === this.buffer.length) {
          // A CR at the end of the chunk: the LF of a CRLF may come in the next one.
          this.pendingCr = true;
          next = cr + 1;
        } else {
          next = this.buffer[cr + 1] === '\n' ? cr + 2 : cr + 1;
        }
      } else {
        end = lf;
        next = lf + 1;
      }
      const message = this.line(this.buffer.slice(start, end));
      if (message) out.push(message);
      start = next;
    }
    this.buffer = this.buffer.slice(start);
    return out;
  }

  /** The stream ended: an event without its closing empty line is discarded, as the spec says. */
  end(): SseMessage[] {
    const rest = this.decoder.decode();
    const out = rest ? this.push(rest) : [];
    this.buffer = '';
    this.reset();
    return out;
  }

  private line(line: string): SseMessage | undefined {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.eventType = value;
        break;
      case 'data':
        this.data.push(value);
        this.hasData = true;
        break;
      case 'id':
        if (!value.includes('\0')) this.lastId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
      default:
        // Unknown fields are ignored.
        break;
    }
    return undefined;
  }

  private dispatch(): SseMessage | undefined {
    if (!this.hasData) {
      this.reset();
      return undefined;
    }
    const message: SseMessage = {
      event: this.eventType === '' ? 'message' : this.eventType,
      data: this.data.join('\n'),
      id: this.lastId,
      retry: this.retry,
    };
    this.reset();
    return message;
  }

  private reset(): void {
    this.eventType = '';
    this.data = [];
    this.hasData = false;
    this.retry = undefined;
  }
}

/** The events of a text/event-stream body, until it ends. */
export async function* readSse(
  body: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>,
): AsyncGenerator<SseMessage> {
  const parser = new SseParser();
  for await (const chunk of body as AsyncIterable<Uint8Array>) {
    yield* parser.push(chunk);
  }
  yield* parser.end();
}
