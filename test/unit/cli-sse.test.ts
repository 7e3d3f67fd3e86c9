/** The text/event-stream parser: fields, comments, multi-line data, and chunks split anywhere. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SseParser, readSse, type SseMessage } from '../../src/cli/sse.js';

function parseAll(chunks: (string | Uint8Array)[]): SseMessage[] {
  const parser = new SseParser();
  return [...chunks.flatMap((c) => parser.push(c)), ...parser.end()];
}

const STREAM =
  ': connected\n\n' +
  'event: build\ndata: {"id":1}\n\n' +
  ': keep-alive\n' +
  'id: 7\nevent: log\ndata: first line\ndata:second line\ndata:  indented\n\n' +
  'data: no event name\r\n\r\n' +
  'event: task\rdata: cr only\r\r' +
  'retry: 3000\nevent: agent\ndata: é ✓ 𝄞\n\n';

const EXPECTED: SseMessage[] = [
  { event: 'build', data: '{"id":1}', id: undefined, retry: undefined },
  { event: 'log', data: 'first line\nsecond line\n indented', id: '7', retry: undefined },
  { event: 'message', data: 'no event name', id: '7', retry: undefined },
  { event: 'task', data: 'cr only', id: '7', retry: undefined },
  { event: 'agent', data: 'é ✓ 𝄞', id: '7', retry: 3000 },
];

describe('SseParser', () => {
  it('parses events, comments, multi-line data, ids, retry and every line ending', () => {
    assert.deepEqual(parseAll([STREAM]), EXPECTED);
  });

  it('gives the same events however the bytes are split (every split point, and byte by byte)', () => {
    const bytes = new TextEncoder().encode(STREAM);
    for (let i = 0; i <= bytes.length; i++) {
      assert.deepEqual(parseAll([bytes.slice(0, i), bytes.slice(i)]), EXPECTED, `split at ${i}`);
    }
    assert.deepEqual(
      parseAll([...bytes].map((b) => Uint8Array.of(b))),
      EXPECTED,
      'one byte at a time',
    );
  });

  it('treats a CRLF split across chunks as one line ending', () => {
    assert.deepEqual(parseAll(['data: a\r', '\n\r', '\n']), [
      { event: 'message', data: 'a', id: undefined, retry: undefined },
    ]);
    // A lone CR then an empty chunk: still one line ending.
    assert.deepEqual(parseAll(['data: b\r', '', '\n', '\n']), [
      { event: 'message', data: 'b', id: undefined, retry: undefined },
    ]);
  });

  it('ignores events without data, unknown fields and a BOM; drops an unterminated event', () => {
    assert.deepEqual(
      parseAll(['\uFEFFevent: nothing\n\n', 'foo: bar\ndata\n\n', 'data: cut off']),
      [{ event: 'message', data: '', id: undefined, retry: undefined }],
    );
  });

  it('keeps the last id across events and ignores an id with NUL', () => {
    const events = parseAll(['id: 1\ndata: a\n\n', 'id: x\0y\ndata: b\n\n', 'id\ndata: c\n\n']);
    assert.deepEqual(
      events.map((e) => e.id),
      ['1', '1', ''],
    );
  });

  it('reads a stream of chunks', async () => {
    async function* body(): AsyncGenerator<Uint8Array> {
      yield new TextEncoder().encode('event: log\nda');
      yield new TextEncoder().encode('ta: x\n\n');
    }
    const events: SseMessage[] = [];
    for await (const event of readSse(body())) events.push(event);
    assert.deepEqual(events, [{ event: 'log', data: 'x', id: undefined, retry: undefined }]);
  });
});
