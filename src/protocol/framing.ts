/**
 * Length-prefixed frames on a byte stream:
 *
 *   u32 BE length L (of everything after it) | u8 kind | body (L - 1 bytes)
 *
 *   kind 1 JSON:   body = UTF-8 JSON text
 *   kind 2 BINARY: body = u32 BE header length H | H bytes UTF-8 JSON header | raw data
 *
 * A frame longer than the limit is refused before any of it is buffered: the stream cannot be
 * resynchronised after that, so the caller closes the connection.
 */
import { MusterError } from './errors.js';

export const FRAME_JSON = 1;
export const FRAME_BINARY = 2;
export const DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024;

export type Frame =
  { kind: 'json'; value: unknown } | { kind: 'binary'; header: unknown; data: Buffer };

export function encodeJsonFrame(value: unknown): Buffer {
  const json = JSON.stringify(value);
  const bodyLength = Buffer.byteLength(json);
  const frame = Buffer.allocUnsafe(5 + bodyLength);
  frame.writeUInt32BE(bodyLength + 1, 0);
  frame.writeUInt8(FRAME_JSON, 4);
  frame.write(json, 5, 'utf8');
  return frame;
}

/** Returns the frame prefix (length, kind, header); send `data` right after it. */
export function encodeBinaryFramePrefix(header: unknown, dataLength: number): Buffer {
  const json = JSON.stringify(header);
  const headerLength = Buffer.byteLength(json);
  const prefix = Buffer.allocUnsafe(9 + headerLength);
  prefix.writeUInt32BE(1 + 4 + headerLength + dataLength, 0);
  prefix.writeUInt8(FRAME_BINARY, 4);
  prefix.writeUInt32BE(headerLength, 5);
  prefix.write(json, 9, 'utf8');
  return prefix;
}

export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private maxFrameBytes = DEFAULT_MAX_FRAME_BYTES) {}

  /**
   * Changes the limit for every frame push() has not returned yet: a peer gets a small limit
   * until it has authenticated, then the full one.
   */
  setMaxFrameBytes(limit: number): void {
    this.maxFrameBytes = limit;
  }

  /** Feeds bytes; returns every complete frame. Throws MusterError on a bad or oversize frame. */
  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame[] = [];
    for (;;) {
      if (this.buffered < 4) break;
      const length = this.peekUInt32();
      if (length < 1 || length > this.maxFrameBytes) {
        throw new MusterError(
          length < 1 ? 'MALFORMED_FRAME' : 'FRAME_TOO_LARGE',
          length < 1
            ? 'frame of length 0'
            : `frame of ${length} bytes is over the limit of ${this.maxFrameBytes}`,
          { length, limit: this.maxFrameBytes },
        );
      }
      if (this.buffered < 4 + length) break;
      const frame = this.take(4 + length).subarray(4);
      frames.push(decodeBody(frame));
    }
    return frames;
  }

  private peekUInt32(): number {
    let first = this.chunks[0]!;
    if (first.length < 4) {
      // Rare: the length prefix straddles chunks. Join everything buffered into one chunk.
      first = Buffer.concat(this.chunks, this.buffered);
      this.chunks = [first];
    }
    return first.readUInt32BE(0);
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0]!;
      const need = n - filled;
      if (chunk.length <= need) {
        chunk.copy(out, filled);
        filled += chunk.length;
        this.chunks.shift();
      } else {
        chunk.copy(out, filled, 0, need);
        this.chunks[0] = chunk.subarray(need);
        filled += need;
      }
    }
    this.buffered -= n;
    return out;
  }
}

function decodeBody(body: Buffer): Frame {
  const kind = body[0];
  if (kind === FRAME_JSON) return { kind: 'json', value: parseJson(body.subarray(1)) };
  if (kind === FRAME_BINARY) {
    if (body.length < 5) throw new MusterError('MALFORMED_FRAME', 'binary frame without a header');
    const headerLength = body.readUInt32BE(1);
    if (5 + headerLength > body.length) {
      throw new MusterError('MALFORMED_FRAME', 'binary frame header runs past the frame');
    }
    const header = parseJson(body.subarray(5, 5 + headerLength));
    return { kind: 'binary', header, data: body.subarray(5 + headerLength) };
  }
  throw new MusterError('MALFORMED_FRAME', `unknown frame kind ${String(kind)}`, { kind });
}

function parseJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new MusterError('MALFORMED_FRAME', 'frame is not valid JSON', undefined, { cause: err });
  }
}
