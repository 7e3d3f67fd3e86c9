/**
 * FramedConnection.progress over a real TCP connection (what the heartbeat waits on): it moves
 * with bytes from the peer and with blob chunks that left for it, stalls once a peer that reads
 * nothing has filled the kernel's buffers, and ignores small frames of ours (a ping leaves
 * whether the peer is there or not).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { FramedConnection } from '../../src/protocol/connection.js';
import { encodeJsonFrame } from '../../src/protocol/framing.js';
import type { ClientWireMessage } from '../../src/protocol/messages.js';
import { waitFor } from '../helpers/agent-process.js';

const MiB = 1024 * 1024;
const CHUNKS = 64;

describe('FramedConnection.progress', () => {
  let peer: Socket;
  let conn: FramedConnection<ClientWireMessage>;
  const server = createServer();
  before(async () => {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    const accepted = once(server, 'connection');
    const socket = connect(address.port, '127.0.0.1');
    await once(socket, 'connect');
    peer = (await accepted)[0] as Socket;
    conn = new FramedConnection(socket, { onFrame: () => undefined, onClose: () => undefined });
  });
  after(() => {
    conn.destroy();
    peer.destroy();
    server.close();
  });

  it('ignores our own small frames, counts what the peer sends', async () => {
    peer.pause();
    for (let i = 0; i < 100; i++) conn.sendJson({ t: 'ping', id: i + 1 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(conn.progress, 0);
    const pong = encodeJsonFrame({ t: 'pong', re: 1 });
    peer.write(pong);
    await waitFor(() => conn.progress === pong.length, 10_000, 'the pong to arrive');
  });

  it('counts blob chunks that left, stalls while the peer reads nothing, moves when it reads', async () => {
    const start = conn.progress;
    const chunk = Buffer.alloc(MiB, 7);
    for (let i = 0; i < CHUNKS; i++)
      conn.sendBinary(
        { t: 'blob.chunk', re: 1, sha256: 'a'.repeat(64), offset: i * MiB, size: MiB, last: false },
        chunk,
      );
    // The kernel takes a few MB, then nothing more leaves: the value settles below the total.
    let last = -1;
    await waitFor(
      async () => {
        const now = conn.progress;
        const settled = now === last;
        last = now;
        await new Promise((resolve) => setTimeout(resolve, 200));
        return settled && conn.progress === now;
      },
      20_000,
      'progress to settle while the peer reads nothing',
    );
    assert.ok(last - start < CHUNKS * MiB, `settled at ${last - start} of ${CHUNKS * MiB}`);
    peer.resume();
    peer.on('data', () => undefined);
    await waitFor(
      () => conn.progress - start === CHUNKS * MiB,
      20_000,
      'every chunk to leave once the peer reads',
    );
  });
});
