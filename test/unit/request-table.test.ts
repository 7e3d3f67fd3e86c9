/**
 * Request correlation of the coordinator's agent client, without sockets: answers reach the
 * request whose id they carry until one is its last, errors and closes reject, and a connection
 * that failed refuses new requests.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RequestTable } from '../../src/protocol/client/request-table.js';
import { MusterError } from '../../src/protocol/errors.js';
import type { ClientWireMessage } from '../../src/protocol/messages.js';

function table(failedWith: () => MusterError | undefined = () => undefined): {
  requests: RequestTable;
  sent: ClientWireMessage[];
} {
  const sent: ClientWireMessage[] = [];
  const requests = new RequestTable(
    {
      sendJson: (message) => {
        sent.push(message);
        return true;
      },
    },
    failedWith,
  );
  return { requests, sent };
}

const isCode = (code: string) => (err: unknown) => err instanceof MusterError && err.code === code;

describe('request table', () => {
  it('sends with the id it took and resolves on the final answer only', async () => {
    const { requests, sent } = table();
    const id = requests.takeId();
    assert.equal(requests.takeId(), id + 1, 'ids are never reused');
    let done = false;
    const answered = requests
      .send(id, { t: 'blobs.offer', blobs: [] }, (m) => m.t === 'blobs.stored', 0)
      .then(() => (done = true));
    assert.deepEqual(sent, [{ t: 'blobs.offer', blobs: [], id }]);
    requests.answer(id, { t: 'blobs.need', re: id, missing: [] });
    await new Promise((r) => setImmediate(r));
    assert.equal(done, false, 'an answer that is not the last one');
    assert.equal(requests.isOpen(id), true);
    requests.answer(id + 5, { t: 'blobs.stored', re: id + 5 });
    await new Promise((r) => setImmediate(r));
    assert.equal(done, false, 'an answer to another id');
    requests.answer(id, { t: 'blobs.stored', re: id });
    await answered;
    assert.equal(requests.isOpen(id), false);
  });

  it('rejects on an error answer and forgets the request', async () => {
    const { requests } = table();
    const id = requests.takeId();
    const answer = requests.send(id, { t: 'ping' }, (m) => m.t === 'pong', 0);
    requests.fail(id, new MusterError('UNEXPECTED_BLOB', 'no'));
    await assert.rejects(answer, isCode('UNEXPECTED_BLOB'));
    assert.equal(requests.isOpen(id), false);
  });

  it('rejects with REQUEST_TIMEOUT when no final answer comes', async () => {
    const { requests } = table();
    const id = requests.takeId();
    await assert.rejects(
      requests.send(id, { t: 'ping' }, () => false, 1),
      isCode('REQUEST_TIMEOUT'),
    );
    assert.equal(requests.isOpen(id), false);
  });

  it('refuses new requests once the connection failed, without sending', async () => {
    const failure = new MusterError('CONNECTION_CLOSED', 'gone');
    const { requests, sent } = table(() => failure);
    await assert.rejects(
      requests.send(requests.takeId(), { t: 'ping' }, () => true, 0),
      (err) => err === failure,
    );
    assert.deepEqual(sent, []);
  });

  it('fails every open request at a close, and routes chunks by id', async () => {
    const { requests } = table();
    const a = requests.send(requests.takeId(), { t: 'ping' }, () => true, 0);
    const chunks: number[] = [];
    const download = requests.takeId();
    let rejected: MusterError | undefined;
    requests.expect(download, {
      onMessage: () => false,
      onBlob: (header) => chunks.push(header.offset),
      reject: (err) => (rejected = err),
    });
    const header = { t: 'blob.chunk', re: download, sha256: 'a'.repeat(64), size: 2 } as const;
    requests.chunk({ ...header, offset: 0, last: false }, Buffer.from('x'));
    requests.chunk({ ...header, re: download + 1, offset: 1, last: true }, Buffer.from('y'));
    assert.deepEqual(chunks, [0]);
    requests.failAll(new MusterError('CONNECTION_CLOSED', 'closed'));
    await assert.rejects(a, isCode('CONNECTION_CLOSED'));
    assert.equal(rejected?.code, 'CONNECTION_CLOSED');
    assert.equal(requests.isOpen(download), false);
  });
});
