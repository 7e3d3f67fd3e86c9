/**
 * Low-level peers for test/e2e/coordinator-bad-input.test.ts: raw HTTP requests a well-behaved
 * client never sends (headers without the body they announce, bodies cut off mid-way, endless
 * chunked bodies), fake "agents" that answer the coordinator's hello with garbage, and the CLI.
 * Every wait is bounded.
 */
import { randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { encodeJsonFrame, FrameDecoder } from '../../src/protocol/framing.js';

const WAIT_MS = 15_000;

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

function collect(
  res: IncomingMessage,
  resolve: (r: RawResponse) => void,
  reject: (err: Error) => void,
): void {
  const chunks: Buffer[] = [];
  res.on('data', (d: Buffer) => chunks.push(d));
  res.on('error', reject);
  res.on('end', () =>
    resolve({
      status: res.statusCode ?? 0,
      headers: res.headers,
      text: Buffer.concat(chunks).toString('utf8'),
    }),
  );
}

/** One request with exactly these headers and this body (nothing added but Host). */
export function rawRequest(
  baseUrl: string,
  method: string,
  path: string,
  headers: Record<string, string | number>,
  body?: Buffer | string,
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(new URL(path, baseUrl), { method, headers, timeout: WAIT_MS });
    req.on('response', (res) => collect(res, resolve, reject));
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in time`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Sends only the request head, announcing a body that never comes, and returns the answer the
 * server gives to the head alone (then drops the connection).
 */
export function headOnly(
  baseUrl: string,
  method: string,
  path: string,
  headers: Record<string, string | number>,
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(new URL(path, baseUrl), { method, headers });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`${method} ${path}: no answer to the head alone in time`));
    }, WAIT_MS);
    req.on('response', (res) => {
      collect(
        res,
        (r) => {
          clearTimeout(timer);
          req.destroy();
          resolve(r);
        },
        (err) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.flushHeaders();
  });
}

/**
 * Streams `total` bytes of `fill` as a chunked body that never ends (no terminating chunk), and
 * stops writing as soon as the server answers. Resolves with the answer and the bytes sent.
 *
 * To see a refusal of an over-limit body reliably, send just one byte over the limit: a server
 * that answers and closes while unread bytes wait in its socket makes its kernel reset the
 * connection, and the reset can destroy the answer before this side reads it.
 */
export function streamUntilAnswered(
  baseUrl: string,
  method: string,
  path: string,
  headers: Record<string, string | number>,
  total: number,
  fill: Buffer,
): Promise<RawResponse & { sent: number }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(new URL(path, baseUrl), { method, headers });
    let answered = false;
    let sent = 0;
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`${method} ${path}: no answer in time`));
    }, WAIT_MS * 2);
    req.on('response', (res) => {
      answered = true;
      collect(
        res,
        (r) => {
          clearTimeout(timer);
          req.destroy();
          resolve({ ...r, sent });
        },
        (err) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
    req.on('error', (err) => {
      // The server may hang up on the rest of the body once it has answered.
      if (answered) return;
      clearTimeout(timer);
      reject(err);
    });
    const pump = (): void => {
      while (!answered && sent < total) {
        const chunk = fill.subarray(0, Math.min(fill.length, total - sent));
        sent += chunk.length;
        if (!req.write(chunk)) {
          req.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
}

/**
 * Sends the head and `partial` of the announced body and leaves the upload hanging; `abort()`
 * then destroys the connection: a client that disconnects mid-upload.
 */
export async function startUpload(
  baseUrl: string,
  path: string,
  headers: Record<string, string | number>,
  partial: Buffer,
): Promise<{ abort(): Promise<void> }> {
  const req = httpRequest(new URL(path, baseUrl), { method: 'PUT', headers });
  req.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => req.on('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${path}: could not send the start`)), WAIT_MS);
    req.write(partial, () => {
      clearTimeout(timer);
      resolve();
    });
  });
  return {
    abort: async () => {
      req.destroy();
      await closed;
    },
  };
}

/** How a fake agent answers the coordinator's hello. */
export type FakeAgentBehaviour =
  /** An HTTP server's answer: its first four bytes read as a length far over the frame limit. */
  | 'http'
  /** Random bytes (the first made 0xff so the length prefix is over the limit). */
  | 'random'
  /** A frame of an unknown kind. */
  | 'bad-kind'
  /** A JSON frame whose body is not JSON. */
  | 'bad-json'
  /** A well-formed frame, but not the challenge the handshake expects. */
  | 'wrong-message'
  /** A ready whose proof is wrong: something that is not the agent, or has another key. */
  | 'bad-proof'
  /** Hangs up right after reading the hello. */
  | 'close';

export interface FakeAgent {
  port: number;
  /** The hello messages the coordinator sent (decoded with the real frame decoder). */
  hellos: Record<string, unknown>[];
  close(): Promise<void>;
}

export async function startFakeAgent(behaviour: FakeAgentBehaviour): Promise<FakeAgent> {
  const sockets = new Set<Socket>();
  const hellos: Record<string, unknown>[] = [];
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const decoder = new FrameDecoder();
    let step: 'hello' | 'auth' | 'done' = 'hello';
    socket.on('data', (chunk: Buffer) => {
      if (step === 'done') return;
      let frames;
      try {
        frames = decoder.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      const frame = frames[0];
      if (frame === undefined) return;
      if (step === 'auth') {
        // The coordinator proved the key; the imposter cannot, so its proof in ready is wrong.
        step = 'done';
        socket.write(
          encodeJsonFrame({
            t: 'ready',
            proof: randomBytes(32).toString('hex'),
            instance: { key: 'muster@id:x', product: 'muster', dir: 'x' },
            limits: { maxFrameBytes: 4 * 1024 * 1024 },
          }),
        );
        return;
      }
      step = behaviour === 'bad-proof' ? 'auth' : 'done';
      if (frame.kind === 'json') hellos.push(frame.value as Record<string, unknown>);
      answer(socket, behaviour);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('fake agent: no port');
  return {
    port: address.port,
    hellos,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function answer(socket: Socket, behaviour: FakeAgentBehaviour): void {
  switch (behaviour) {
    case 'http':
      socket.write(
        'HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n',
      );
      return;
    case 'random': {
      const bytes = randomBytes(512);
      bytes[0] = 0xff;
      socket.write(bytes);
      return;
    }
    case 'bad-kind':
      socket.write(Buffer.from([0, 0, 0, 5, 7, 1, 2, 3, 4]));
      return;
    case 'bad-json': {
      const body = Buffer.from('{"t": "challenge", ');
      const head = Buffer.alloc(5);
      head.writeUInt32BE(body.length + 1, 0);
      head.writeUInt8(1, 4);
      socket.write(Buffer.concat([head, body]));
      return;
    }
    case 'wrong-message':
      socket.write(encodeJsonFrame({ t: 'pong' }));
      return;
    case 'bad-proof':
      socket.write(
        encodeJsonFrame({
          t: 'challenge',
          protocol: 2,
          agentId: 'imposter',
          agentVersion: '0.0.0',
          nonce: randomBytes(32).toString('hex'),
        }),
      );
      return;
    case 'close':
      socket.destroy();
      return;
  }
}
