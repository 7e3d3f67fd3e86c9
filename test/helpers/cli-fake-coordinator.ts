/**
 * For the CLI's unit tests: a fake coordinator (node:http on 127.0.0.1:0) that answers only the
 * routes a test gives it and records every request. The CLI runner is in cli.ts.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

export { cliEntry, runCli, type CliResult, type CliRun } from './cli.js';

export interface FakeRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: Buffer;
  params: Record<string, string>;
  json<T = unknown>(): T;
}

/**
 * What a route answers: JSON (status 200 unless given), or nothing when it wrote itself; with
 * `headers` on top of the fake's `headers`.
 */
export type FakeAnswer =
  { status?: number; json?: unknown; raw?: Buffer; headers?: Record<string, string> } | undefined;
export type FakeHandler = (
  request: FakeRequest,
  response: ServerResponse,
) => FakeAnswer | Promise<FakeAnswer>;

export interface SseWriter {
  send(event: string, data: unknown): void;
  /** Raw text, to test framing. */
  write(text: string): void;
  end(): void;
}

export class FakeCoordinator {
  readonly requests: FakeRequest[] = [];
  private readonly routes: {
    method: string;
    pattern: RegExp;
    keys: string[];
    handler: FakeHandler;
  }[] = [];
  private readonly server: Server;
  private readonly streams = new Set<ServerResponse>();
  url = '';
  /**
   * Headers of every response, routes and 404s alike (e.g. x-muster-backup, as a primary with
   * a selected backup sends); change them at any time.
   */
  headers: Record<string, string> = {};

  private constructor(tls?: { cert: string; key: string }) {
    const handler = (req: IncomingMessage, res: ServerResponse): void =>
      void this.dispatch(req, res);
    this.server = tls ? createHttpsServer(tls, handler) : createServer(handler);
  }

  /** With `tls` (PEM cert and key), it serves HTTPS. */
  static async start(tls?: { cert: string; key: string }): Promise<FakeCoordinator> {
    const fake = new FakeCoordinator(tls);
    fake.server.listen(0, '127.0.0.1');
    await once(fake.server, 'listening');
    const scheme = tls ? 'https' : 'http';
    fake.url = `${scheme}://127.0.0.1:${(fake.server.address() as AddressInfo).port}`;
    return fake;
  }

  /** `path` is under /api/v1, with `:name` parameters. */
  on(method: string, path: string, handler: FakeHandler): this {
    const keys: string[] = [];
    const source = path.replace(/:([A-Za-z]+)/g, (_m, key: string) => {
      keys.push(key);
      return '([^/]+)';
    });
    this.routes.unshift({ method, pattern: new RegExp(`^/api/v1${source}$`), keys, handler });
    return this;
  }

  /** Requests to a path (under /api/v1, exact) so far. */
  calls(method: string, path: string): FakeRequest[] {
    return this.requests.filter((r) => r.method === method && r.path === `/api/v1${path}`);
  }

  /** Starts an event stream on the response. */
  sse(response: ServerResponse): SseWriter {
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    response.write(': connected\n\n');
    this.streams.add(response);
    response.on('close', () => this.streams.delete(response));
    const write = (text: string): void => {
      if (!response.destroyed && !response.writableEnded) response.write(text);
    };
    return {
      send: (event, data) => write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`),
      write,
      end: () => response.end(),
    };
  }

  async close(): Promise<void> {
    for (const stream of this.streams) stream.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url ?? '/', 'http://fake');
    const body = Buffer.concat(chunks);
    const method = req.method ?? 'GET';
    const request: FakeRequest = {
      method,
      path: url.pathname,
      query: url.searchParams,
      headers: req.headers,
      body,
      params: {},
      json: <T>() => JSON.parse(body.toString('utf8')) as T,
    };
    this.requests.push(request);
    for (const [name, value] of Object.entries(this.headers)) res.setHeader(name, value);
    for (const route of this.routes) {
      if (route.method !== method) continue;
      const match = route.pattern.exec(url.pathname);
      if (!match) continue;
      route.keys.forEach(
        (key, i) => (request.params[key] = decodeURIComponent(match[i + 1] ?? '')),
      );
      try {
        const answer = await route.handler(request, res);
        if (answer === undefined) return;
        for (const [name, value] of Object.entries(answer.headers ?? {})) {
          res.setHeader(name, value);
        }
        if (answer.raw !== undefined) {
          res.writeHead(answer.status ?? 200, { 'content-type': 'application/octet-stream' });
          res.end(answer.raw);
        } else if (answer.json === undefined) {
          res.writeHead(answer.status ?? 204).end();
        } else {
          res.writeHead(answer.status ?? 200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(answer.json));
        }
      } catch (err) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'INTERNAL', message: String(err) } }));
      }
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        error: { code: 'NOT_FOUND', message: `no route ${method} ${url.pathname}` },
      }),
    );
  }
}

export function apiError(status: number, code: string, message: string, details?: unknown) {
  return { status, json: { error: { code, message, details } } };
}
