import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MusterError } from '../../src/protocol/errors.js';
import {
  encodeBinaryFramePrefix,
  encodeJsonFrame,
  FrameDecoder,
  type Frame,
} from '../../src/protocol/framing.js';

function binaryFrame(header: object, data: Buffer): Buffer {
  return Buffer.concat([encodeBinaryFramePrefix(header, data.length), data]);
}

describe('framing', () => {
  it('decodes JSON and binary frames fed one byte at a time', () => {
    const stream = Buffer.concat([
      encodeJsonFrame({ t: 'ping', id: 1 }),
      binaryFrame({ t: 'blob.chunk', re: 2 }, Buffer.from('hello')),
      encodeJsonFrame({ t: 'pong', re: 1, text: 'é✓' }),
    ]);
    const decoder = new FrameDecoder(1024);
    const frames: Frame[] = [];
    for (const byte of stream) frames.push(...decoder.push(Buffer.from([byte])));
    assert.equal(frames.length, 3);
    assert.deepEqual(frames[0], { kind: 'json', value: { t: 'ping', id: 1 } });
    const binary = frames[1]!;
    assert.equal(binary.kind, 'binary');
    if (binary.kind === 'binary') {
      assert.deepEqual(binary.header, { t: 'blob.chunk', re: 2 });
      assert.equal(binary.data.toString(), 'hello');
    }
    assert.deepEqual(frames[2], { kind: 'json', value: { t: 'pong', re: 1, text: 'é✓' } });
  });

  it('decodes many frames from one chunk', () => {
    const frames = Array.from({ length: 100 }, (_, i) => encodeJsonFrame({ i }));
    const decoded = new FrameDecoder().push(Buffer.concat(frames));
    assert.deepEqual(
      decoded.map((f) => (f.kind === 'json' ? f.value : null)),
      Array.from({ length: 100 }, (_, i) => ({ i })),
    );
  });

  it('refuses a frame over the limit from its length prefix alone', () => {
    const decoder = new FrameDecoder(64 * 1024);
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(100 * 1024 * 1024);
    assert.throws(
      () => decoder.push(prefix),
      (err: unknown) => err instanceof MusterError && err.code === 'FRAME_TOO_LARGE',
    );
  });

  it('refuses an unknown kind, a zero length, bad JSON and a header past the frame', () => {
    const cases: Buffer[] = [
      Buffer.from([0, 0, 0, 2, 7, 0]),
      Buffer.from([0, 0, 0, 0]),
      Buffer.concat([Buffer.from([0, 0, 0, 4, 1]), Buffer.from('{x}')]),
      Buffer.from([0, 0, 0, 6, 2, 0, 0, 0, 99, 0]),
    ];
    for (const bytes of cases) {
      assert.throws(
        () => new FrameDecoder().push(bytes),
        (err: unknown) => err instanceof MusterError && err.code === 'MALFORMED_FRAME',
        bytes.toString('hex'),
      );
    }
  });

  it('applies a changed limit from the next frame on', () => {
    const decoder = new FrameDecoder(64);
    const big = encodeJsonFrame({ pad: 'x'.repeat(100) });
    assert.throws(() => new FrameDecoder(64).push(big), { code: 'FRAME_TOO_LARGE' });
    assert.equal(decoder.push(encodeJsonFrame({ t: 'small' })).length, 1);
    decoder.setMaxFrameBytes(1024);
    assert.deepEqual(decoder.push(big), [{ kind: 'json', value: { pad: 'x'.repeat(100) } }]);
  });
});
