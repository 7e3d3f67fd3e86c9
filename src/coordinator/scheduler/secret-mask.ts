/**
 * Masking a task's secrets in what the coordinator keeps of it: every exact value in its output
 * (before the log is stored or evented) and in its error text becomes `***`.
 *
 * A value may arrive split across chunks, so each stream keeps back the end of what it has seen
 * that could begin a value (at most the longest value less one byte) until the next chunk shows
 * whether it does; flush() gives it back at the task's end. Matching is on bytes, so a value split
 * inside a UTF-8 character is found too.
 */
import type { OutputStream } from '../../protocol/task-types.js';

/** What the scheduler asks for a task's secrets (secrets/secrets.ts). */
export interface SecretValues {
  values(names: readonly string[]): Record<string, string>;
}

export const MASK = '***';
const MASK_BYTES = Buffer.from(MASK);

/** One stream's masking: push() what arrives, get what may be kept now. */
export class StreamMask {
  private carry: Buffer = Buffer.alloc(0);

  /** `values`: non-empty, longest first. */
  constructor(private readonly values: readonly Buffer[]) {}

  push(data: Buffer): Buffer {
    return this.mask(data, false);
  }

  /** What was kept back, masked (the stream ended: what begins a value and ends here is none). */
  flush(): Buffer {
    return this.mask(Buffer.alloc(0), true);
  }

  private mask(data: Buffer, end: boolean): Buffer {
    const text = this.carry.length === 0 ? data : Buffer.concat([this.carry, data]);
    const out: Buffer[] = [];
    let i = 0;
    for (;;) {
      let at = -1;
      let length = 0;
      for (const value of this.values) {
        const found = text.indexOf(value, i);
        // The earliest match; at one place the longest (values are longest first).
        if (found !== -1 && (at === -1 || found < at)) {
          at = found;
          length = value.length;
        }
      }
      if (at === -1) break;
      // A longer value may start here too, its end not seen yet: wait for it.
      if (!end && this.mayBegin(text.subarray(at), length)) {
        out.push(text.subarray(i, at));
        this.carry = Buffer.from(text.subarray(at));
        return Buffer.concat(out);
      }
      out.push(text.subarray(i, at), MASK_BYTES);
      i = at + length;
    }
    const held = end ? text.length : this.heldFrom(text, i);
    out.push(text.subarray(i, held));
    this.carry = Buffer.from(text.subarray(held));
    return Buffer.concat(out);
  }

  /** Where the longest end of text[from..] that begins some value starts (text.length: none). */
  private heldFrom(text: Buffer, from: number): number {
    const longest = this.values[0]?.length ?? 0;
    for (let start = Math.max(from, text.length - longest + 1); start < text.length; start++) {
      if (this.mayBegin(text.subarray(start), 0)) return start;
    }
    return text.length;
  }

  /** Whether `tail` is the start of a value longer than itself and than `than` bytes. */
  private mayBegin(tail: Buffer, than: number): boolean {
    return this.values.some(
      (v) => v.length > tail.length && v.length > than && v.subarray(0, tail.length).equals(tail),
    );
  }
}

/** A task's masking: one StreamMask per output stream, and its error texts. */
export class OutputMask {
  private readonly values: Buffer[];
  private readonly texts: string[];
  private readonly streams = new Map<OutputStream, StreamMask>();
  /** Output that cannot be masked is not kept: one notice per stream instead. */
  private withheld: Set<OutputStream> | undefined;

  /** A mask for secrets that cannot be read any more: the output is dropped, not kept unmasked. */
  static withholding(): OutputMask {
    const mask = new OutputMask([]);
    mask.withheld = new Set();
    return mask;
  }

  constructor(values: Iterable<string>) {
    this.texts = [...new Set(values)].filter((v) => v !== '').sort((a, b) => b.length - a.length);
    this.values = this.texts.map((v) => Buffer.from(v, 'utf8')).sort((a, b) => b.length - a.length);
  }

  private get empty(): boolean {
    return this.values.length === 0;
  }

  push(stream: OutputStream, data: Buffer): Buffer {
    if (this.withheld !== undefined) {
      if (this.withheld.has(stream)) return Buffer.alloc(0);
      this.withheld.add(stream);
      return Buffer.from(
        '[muster: output withheld: the secrets to mask in it can no longer be read]\n',
      );
    }
    if (this.empty) return data;
    let mask = this.streams.get(stream);
    if (mask === undefined) {
      mask = new StreamMask(this.values);
      this.streams.set(stream, mask);
    }
    return mask.push(data);
  }

  /** Each stream's kept-back bytes, at the task's end. */
  flush(): { stream: OutputStream; data: Buffer }[] {
    const out: { stream: OutputStream; data: Buffer }[] = [];
    for (const [stream, mask] of this.streams) {
      const data = mask.flush();
      if (data.length > 0) out.push({ stream, data });
    }
    return out;
  }

  /** A message (an error that may echo the environment) with every value masked. */
  text(message: string): string {
    let out = message;
    for (const value of this.texts) out = out.split(value).join(MASK);
    return out;
  }
}
