/**
 * The CLI's HTTP transport (src/cli/http-transport.ts) against real servers on 127.0.0.1: the
 * answer's status, headers and body; keep-alive reuse; the timeout (whole exchange, or until
 * the headers of a stream); abort; a body cancelled; a server that closes before or during its
 * answer; a kept-alive connection the server closed as it was reused; an idle connection that
 * does not keep a process alive. And what the API client makes of those errors.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { X509Certificate } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ApiClient } from '../../src/cli/api-client.js';
import { HttpTransport, TimeoutError } from '../../src/cli/http-transport.js';
import { selfSignedCertificate } from '../../src/common/self-signed.js';
import { MusterError } from '../../src/protocol/errors.js';

type Handler = (req: IncomingMessage, body: Buffer, res: ServerResponse) => void;

let server: Server;
let base: string;
const handlers = new Map<string, Handler>();
/** Connections the server accepted, and which of them are closed. */
let connections = 0;
const sockets: Socket[] = [];

before(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const handler = handlers.get(new URL(req.url ?? '/', 'http://x').pathname);
      if (handler) handler(req, Buffer.concat(chunks), res);
      else res.writeHead(404).end();
    });
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', (socket: Socket) => {
    connections += 1;
    sockets.push(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

after(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** A raw TCP server: `onConnection` gets every socket, with what it has received so far. */
async function rawServer(
  onData: (socket: Socket, received: string, index: number) => void,
): Promise<{ url: string; server: NetServer; accepted: () => number }> {
  let accepted = 0;
  const raw = createNetServer((socket) => {
    const index = accepted++;
    let received = '';
    socket.on('data', (data: Buffer) => {
      received += data.toString('latin1');
      onData(socket, received, index);
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
  const port = (raw.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, server: raw, accepted: () => accepted };
}

function closeRaw(raw: NetServer): Promise<void> {
  return new Promise((resolve) => raw.close(() => resolve()));
}

describe('HttpTransport', () => {
  it('sends method, headers and body with its length; answers status, headers and body', async () => {
    let seen: { method?: string; headers?: IncomingMessage['headers']; body?: string } = {};
    handlers.set('/echo', (req, body, res) => {
      seen = { method: req.method, headers: req.headers, body: body.toString() };
      res.setHeader('x-many', ['a', 'b']);
      res.writeHead(201, { 'content-type': 'application/json', 'X-Muster-Backup': 'https://b' });
      res.end('{"ok":true,"text":"é"}');
    });
    const transport = new HttpTransport();
    const response = await transport.request(new URL(`${base}/echo?x=1`), {
      method: 'POST',
      headers: { accept: 'application/json', authorization: 'Bearer t' },
      body: '{"a":"é"}',
      timeoutMs: 5000,
    });
    assert.equal(response.status, 201);
    assert.equal(response.ok, true);
    assert.equal(response.headers.get('x-muster-backup'), 'https://b');
    assert.equal(response.headers.get('X-Muster-Backup'), 'https://b');
    assert.equal(response.headers.get('x-many'), 'a, b');
    assert.equal(response.headers.get('x-none'), null);
    assert.deepEqual(await response.json(), { ok: true, text: 'é' });
    assert.equal(seen.method, 'POST');
    assert.equal(seen.body, '{"a":"é"}');
    assert.equal(seen.headers?.['content-length'], String(Buffer.byteLength('{"a":"é"}')));
    assert.equal(seen.headers?.accept, 'application/json');
    assert.equal(seen.headers?.authorization, 'Bearer t');
    transport.close();
  });

  it('gives bytes as they came, no body for 204, not ok for 4xx, and follows no redirect', async () => {
    const bytes = Buffer.from([0, 1, 2, 255, 254]);
    handlers.set('/bytes', (_req, _body, res) => res.end(bytes));
    handlers.set('/none', (_req, _body, res) => res.writeHead(204).end());
    handlers.set('/moved', (_req, _body, res) =>
      res.writeHead(301, { location: `${base}/bytes` }).end(),
    );
    handlers.set('/bad', (_req, _body, res) => res.writeHead(409).end('{"error":{}}'));
    const transport = new HttpTransport();
    const get = (path: string, method = 'GET') =>
      transport.request(new URL(`${base}${path}`), { method, headers: {}, timeoutMs: 5000 });
    const got = await get('/bytes');
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), bytes);
    const none = await get('/none', 'DELETE');
    assert.equal(none.status, 204);
    assert.equal(none.body, null);
    assert.equal(await none.text(), '');
    const moved = await get('/moved');
    assert.equal(moved.status, 301);
    assert.equal(moved.ok, false);
    assert.equal(moved.headers.get('location'), `${base}/bytes`);
    const bad = await get('/bad', 'PUT');
    assert.equal(bad.status, 409);
    assert.equal(bad.ok, false);
    assert.equal(await bad.text(), '{"error":{}}');
    transport.close();
  });

  it('keeps the connection alive between requests of one transport', async () => {
    handlers.set('/small', (_req, _body, res) => res.end('{}'));
    const transport = new HttpTransport();
    const before = connections;
    for (let i = 0; i < 5; i++) {
      const response = await transport.request(new URL(`${base}/small`), {
        method: i % 2 === 0 ? 'GET' : 'POST',
        headers: {},
        body: i % 2 === 0 ? undefined : '{}',
        timeoutMs: 5000,
      });
      assert.equal(await response.text(), '{}');
    }
    assert.equal(connections - before, 1, 'one connection for five requests');
    transport.close();
  });

  it('times out waiting for the answer, and while reading a slow body', async () => {
    handlers.set('/never', () => undefined);
    handlers.set('/slow-body', (_req, _body, res) => {
      res.writeHead(200, { 'content-length': '10' });
      res.write('12345');
    });
    const transport = new HttpTransport();
    await assert.rejects(
      transport.request(new URL(`${base}/never`), { method: 'GET', headers: {}, timeoutMs: 100 }),
      TimeoutError,
    );
    const slow = await transport.request(new URL(`${base}/slow-body`), {
      method: 'GET',
      headers: {},
      timeoutMs: 200,
    });
    assert.equal(slow.status, 200);
    await assert.rejects(slow.text(), TimeoutError);
    transport.close();
  });

  it('for a stream, the timeout ends with the headers', async () => {
    let later: (() => void) | undefined;
    handlers.set('/stream', (_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('first\n');
      later = () => res.end('second\n');
    });
    const transport = new HttpTransport();
    const response = await transport.request(new URL(`${base}/stream`), {
      method: 'GET',
      headers: {},
      timeoutMs: 50,
      headersOnly: true,
    });
    // Well past the timeout, the stream still delivers.
    await new Promise((resolve) => setTimeout(resolve, 200));
    later?.();
    assert.equal(await response.text(), 'first\nsecond\n');
    transport.close();
  });

  it('rejects with the signal’s reason, before the answer and while reading the body', async () => {
    handlers.set('/never', () => undefined);
    handlers.set('/open', (_req, _body, res) => {
      res.writeHead(200);
      res.write('part');
    });
    const transport = new HttpTransport();
    const first = new AbortController();
    const pending = transport.request(new URL(`${base}/never`), {
      method: 'GET',
      headers: {},
      signal: first.signal,
      timeoutMs: 5000,
    });
    first.abort();
    await assert.rejects(pending, { name: 'AbortError' });
    await assert.rejects(
      transport.request(new URL(`${base}/never`), {
        method: 'GET',
        headers: {},
        signal: first.signal,
        timeoutMs: 5000,
      }),
      { name: 'AbortError' },
    );
    const second = new AbortController();
    const open = await transport.request(new URL(`${base}/open`), {
      method: 'GET',
      headers: {},
      signal: second.signal,
      timeoutMs: 5000,
    });
    const reading = open.text();
    second.abort(new Error('enough'));
    await assert.rejects(reading, { message: 'enough' });
    // A body nobody reads, aborted or timed out: nothing is thrown anywhere.
    const third = new AbortController();
    const unread = await transport.request(new URL(`${base}/open`), {
      method: 'GET',
      headers: {},
      signal: third.signal,
      timeoutMs: 5000,
    });
    const timedOut = await transport.request(new URL(`${base}/open`), {
      method: 'GET',
      headers: {},
      timeoutMs: 50,
    });
    third.abort();
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(unread.status, 200);
    await assert.rejects(unread.text(), { name: 'AbortError' });
    await assert.rejects(timedOut.text(), TimeoutError);
    transport.close();
  });

  it('a cancelled body closes its connection; the next request gets a new one', async () => {
    let closed: Promise<unknown> | undefined;
    handlers.set('/endless', (req, _body, res) => {
      closed = once(req.socket, 'close');
      res.writeHead(200);
      res.write(Buffer.alloc(1024));
    });
    handlers.set('/small', (_req, _body, res) => res.end('{}'));
    const transport = new HttpTransport();
    const response = await transport.request(new URL(`${base}/endless`), {
      method: 'GET',
      headers: {},
      timeoutMs: 5000,
    });
    const body = response.body!;
    for await (const chunk of body) {
      assert.ok(chunk.byteLength > 0);
      break;
    }
    await body.cancel();
    await closed;
    const before = connections;
    const next = await transport.request(new URL(`${base}/small`), {
      method: 'GET',
      headers: {},
      timeoutMs: 5000,
    });
    assert.equal(await next.text(), '{}');
    assert.equal(connections - before, 1);
    transport.close();
  });

  it('a server that closes before or during its answer: ERR_STREAM_PREMATURE_CLOSE', async () => {
    const raw = await rawServer((socket, received) => {
      if (!received.includes('\r\n\r\n')) return;
      if (received.startsWith('GET /hang-up ')) socket.destroy();
      else if (received.startsWith('GET /short ')) {
        socket.end('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789');
      } else {
        socket.end('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nabcde\r\n');
      }
    });
    const transport = new HttpTransport();
    const get = (path: string) =>
      transport.request(new URL(`${raw.url}${path}`), {
        method: 'GET',
        headers: {},
        timeoutMs: 5000,
      });
    await assert.rejects(get('/hang-up'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
    const short = await get('/short');
    await assert.rejects(short.text(), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
    const chunked = await get('/chunked');
    await assert.rejects(chunked.arrayBuffer(), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
    transport.close();
    await closeRaw(raw.server);
  });

  it('sends a request again when its kept-alive connection was closed as it was reused, a POST not', async () => {
    // Each connection answers one request and drops the next without a word, as a server does
    // whose keep-alive timeout ends as the request arrives.
    const seen: number[] = [];
    const raw = await rawServer((socket, received, index) => {
      const requests = received.split('\r\n\r\n').length - 1;
      if (requests === 0) return;
      seen[index] = requests;
      if (requests > 1) {
        socket.destroy();
        return;
      }
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok');
    });
    const transport = new HttpTransport();
    const send = (method: string) =>
      transport.request(new URL(`${raw.url}/x`), {
        method,
        headers: {},
        body: method === 'POST' ? '{}' : undefined,
        timeoutMs: 5000,
      });
    assert.equal(await (await send('GET')).text(), 'ok');
    // Out on the first connection, dropped, then again on a second one.
    assert.equal(await (await send('GET')).text(), 'ok');
    // A POST the server may have read is not sent twice: the drop is the caller's to hear.
    await assert.rejects(send('POST'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
    assert.deepEqual(seen, [2, 2]);
    assert.equal(raw.accepted(), 2);
    transport.close();
    await closeRaw(raw.server);
  });

  it('keeps a pinned connection alive; another pin makes a new one, refused', async () => {
    const pems = await selfSignedCertificate({
      commonName: 'transport-test',
      ips: ['127.0.0.1'],
      notAfter: new Date(Date.now() + 86_400_000),
    });
    const fingerprint = new X509Certificate(pems.cert).fingerprint256;
    let tlsConnections = 0;
    let requests = 0;
    const tls = createHttpsServer({ cert: pems.cert, key: pems.key }, (_req, res) => {
      requests += 1;
      res.end('{}');
    });
    tls.keepAliveTimeout = 60_000;
    tls.on('connection', () => (tlsConnections += 1));
    await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
    const url = new URL(`https://127.0.0.1:${(tls.address() as { port: number }).port}/x`);
    const transport = new HttpTransport();
    for (let i = 0; i < 3; i++) {
      const response = await transport.request(url, {
        method: 'GET',
        headers: {},
        timeoutMs: 5000,
        pins: [fingerprint],
      });
      assert.equal(await response.text(), '{}');
    }
    assert.equal(tlsConnections, 1, 'one pinned connection for three requests');
    await assert.rejects(
      transport.request(url, {
        method: 'GET',
        headers: {},
        timeoutMs: 5000,
        pins: [`AA${fingerprint.slice(2)}`],
      }),
      { code: 'TLS_FINGERPRINT_MISMATCH' },
    );
    assert.equal(tlsConnections, 2);
    assert.equal(requests, 3, 'nothing was sent on the connection that failed the pin');
    transport.close();
    tls.closeAllConnections();
    await new Promise<void>((resolve) => tls.close(() => resolve()));
  });

  it('an idle kept-alive connection does not keep the process alive', async () => {
    handlers.set('/small', (_req, _body, res) => res.end('{}'));
    const module = pathToFileURL(join(import.meta.dirname, '../../src/cli/http-transport.js'));
    const script = `
      const { HttpTransport } = await import(${JSON.stringify(module.href)});
      const transport = new HttpTransport();
      const response = await transport.request(new URL(${JSON.stringify(`${base}/small`)}), {
        method: 'GET', headers: {}, timeoutMs: 5000,
      });
      process.stdout.write(await response.text());
    `;
    const before = connections;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (data: Buffer) => (stdout += data.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0);
    assert.equal(stdout, '{}');
    assert.equal(connections - before, 1);
  });
});

describe('ApiClient over the transport: errors as users see them', () => {
  it('refused, closed before the answer, cut short, timed out, redirected', async () => {
    const raw = await rawServer((socket, received) => {
      if (!received.includes('\r\n\r\n')) return;
      if (received.startsWith('GET /api/v1/status ')) socket.destroy();
      else if (received.startsWith('GET /api/v1/agents ')) {
        socket.end('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n[{"name":');
      } else if (received.startsWith('GET /api/v1/users ')) {
        socket.end(
          'HTTP/1.1 302 Found\r\nlocation: https://elsewhere/\r\ncontent-length: 0\r\n\r\n',
        );
      }
    });
    const client = new ApiClient({ url: raw.url, token: 't', timeoutMs: 300 });
    await assert.rejects(client.status(), (err: unknown) => {
      assert.ok(err instanceof MusterError);
      assert.equal(err.code, 'UNREACHABLE');
      assert.match(
        err.message,
        /cannot reach the coordinator at .*: the connection closed unexpectedly/,
      );
      assert.ok(err.cause instanceof Error, 'the cause chain is kept');
      return true;
    });
    await assert.rejects(client.listAgents(), {
      code: 'UNREACHABLE',
      message: /the connection closed unexpectedly/,
    });
    await assert.rejects(client.listUsers(), {
      code: 'INTERNAL',
      message: /HTTP 302 \(redirected to https:\/\/elsewhere\//,
    });
    await assert.rejects(client.listSettings(), {
      code: 'UNREACHABLE',
      message: /no answer in 0\.3 s/,
    });
    client.close();
    await closeRaw(raw.server);
    const refused = new ApiClient({ url: raw.url, token: 't' });
    await assert.rejects(refused.status(), {
      code: 'UNREACHABLE',
      message: /connection refused/,
    });
  });
});
