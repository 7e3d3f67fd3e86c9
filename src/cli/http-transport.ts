/**
 * The CLI's HTTP exchange with a coordinator, over node:http and node:https instead of Node's
 * global fetch (undici): loading fetch costs a CLI process ~65 ms of CPU on its first request
 * and a few ms per request after, a `muster build` makes many, and the compile service many
 * more. This does only what the API client needs: one request with a string or bytes body, its
 * answer as a minimal response (status, headers.get, text, json, arrayBuffer, a body to iterate
 * or cancel).
 *
 * - Keep-alive: one pool of connections per transport (per ApiClient). An idle connection is
 *   unref'd by Node's agent (it never keeps a process alive) and dropped a second before the
 *   server's Keep-Alive timeout. A request whose reused connection turns out closed by the
 *   server before any answer is sent again once (a request other than GET or HEAD only when it
 *   could not be written: one reset after it was read would run twice).
 * - Timeout: the whole exchange, body included; with `headersOnly` (an event stream) only until
 *   the answer's headers. It rejects (or fails the body) with a TimeoutError.
 * - Abort: the signal's reason, as fetch rejects; after the headers, reading the body fails with
 *   it.
 * - TLS: the system's roots and NODE_EXTRA_CA_CERTS (Node's defaults), with the host name
 *   checked; or, with `pins`, a connection made by connectPinned (src/common/pinned-tls.ts),
 *   handed to the request only once the certificate matched a pin: nothing of the request (its
 *   token) is written on one that did not. Pinned connections have a pool of their own.
 * - Redirects are not followed: a 3xx is the answer (fetch followed them; no coordinator sends
 *   one, and a token is not carried anywhere else).
 * - A connection that closes before the whole answer arrived fails with
 *   ERR_STREAM_PREMATURE_CLOSE (its reason as the cause).
 */
import {
  Agent as HttpAgent,
  request as httpRequest,
  type ClientRequest,
  type IncomingMessage,
  type RequestOptions,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { connectPinned } from '../common/pinned-tls.js';

export interface HttpRequest {
  method: string;
  headers: Record<string, string>;
  body?: string | Uint8Array | undefined;
  signal?: AbortSignal | undefined;
  /** The whole exchange must be over in this time (see headersOnly). */
  timeoutMs: number;
  /** The timeout ends with the answer's headers (an event stream). */
  headersOnly?: boolean;
  /** https only: the SHA-256 fingerprints one of which the server's certificate must have. */
  pins?: readonly string[] | undefined;
}

/** An answer's body: its chunks, once; cancel() closes the connection without reading on. */
export interface ResponseBody extends AsyncIterable<Uint8Array> {
  cancel(): Promise<void>;
}

export interface HttpResponse {
  readonly status: number;
  /** 2xx. */
  readonly ok: boolean;
  readonly headers: { get(name: string): string | null };
  /** null when the answer has none (HEAD, 204, 205, 304). */
  readonly body: ResponseBody | null;
  text(): Promise<string>;
  json(): Promise<unknown>;
  arrayBuffer(): Promise<ArrayBuffer>;
}

/** The exchange took longer than its timeout. */
export class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

/** An https.Agent whose connections are made by connectPinned: pooled only once pinned. */
class PinnedAgent extends HttpsAgent {
  constructor(private readonly pins: readonly string[]) {
    super({ keepAlive: true });
  }

  // Node's Agent waits for the callback when this returns nothing (_http_agent.js createSocket).
  override createConnection(
    options: RequestOptions,
    callback: (err: Error | null, socket?: Duplex) => void,
  ): Duplex {
    connectPinned(
      { host: options.host ?? 'localhost', port: Number(options.port ?? 443) },
      this.pins,
      (err: Error | null, socket?: TLSSocket) => callback(err, socket),
    );
    return undefined as unknown as Duplex;
  }
}

const EMPTY_STATUSES: ReadonlySet<number> = new Set([204, 205, 304]);

export class HttpTransport {
  private http: HttpAgent | undefined;
  private https: HttpsAgent | undefined;
  private pinned: PinnedAgent | undefined;
  private pinnedKey: string | undefined;

  /** One exchange; rejects when no answer came (the error as Node or the signal says it). */
  async request(url: URL, init: HttpRequest): Promise<HttpResponse> {
    try {
      return await this.attempt(url, init);
    } catch (err) {
      if (!(err instanceof StaleConnectionError) || init.signal?.aborted) throw unwrap(err);
      // The server closed a kept-alive connection as it was reused: once more, on a new one.
      return this.attempt(url, init).catch((again: unknown) => {
        throw unwrap(again);
      });
    }
  }

  /** Closes every connection, those of exchanges in flight too (they fail). */
  close(): void {
    this.http?.destroy();
    this.https?.destroy();
    this.pinned?.destroy();
  }

  private agent(url: URL, pins: readonly string[] | undefined): HttpAgent {
    if (url.protocol === 'http:') return (this.http ??= new HttpAgent({ keepAlive: true }));
    if (pins === undefined) return (this.https ??= new HttpsAgent({ keepAlive: true }));
    const key = pins.join(' ');
    if (this.pinned === undefined || this.pinnedKey !== key) {
      this.pinned?.destroy();
      this.pinned = new PinnedAgent(pins);
      this.pinnedKey = key;
    }
    return this.pinned;
  }

  private attempt(url: URL, init: HttpRequest): Promise<HttpResponse> {
    return new Promise<HttpResponse>((resolve, reject) => {
      const { signal } = init;
      if (signal?.aborted) {
        reject(abortReason(signal));
        return;
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        reject(new TypeError(`not an http(s) URL: ${url.href}`));
        return;
      }
      const headers: Record<string, string> = { ...init.headers };
      if (init.body !== undefined) {
        headers['content-length'] = String(Buffer.byteLength(init.body));
      } else if (!['GET', 'HEAD', 'DELETE', 'OPTIONS'].includes(init.method)) {
        headers['content-length'] = '0';
      }
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const req: ClientRequest = send(url, {
        method: init.method,
        headers,
        agent: this.agent(url, init.pins),
      });
      let response: IncomingMessage | undefined;
      let finished = false;
      const finish = (): void => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const fail = (reason: Error): void => {
        // Before the answer: the promise rejects (req's error); after it: reading the body does.
        if (response === undefined) req.destroy(reason);
        else response.destroy(reason);
      };
      const onAbort = (): void => fail(abortReason(signal!));
      const timer = setTimeout(
        () =>
          fail(new TimeoutError(`no answer in ${init.timeoutMs} ms (${init.method} ${url.href})`)),
        init.timeoutMs,
      );
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (err: Error) => {
        finish();
        const code = (err as NodeJS.ErrnoException).code;
        // A request the server may have read before the reset is sent again only when reading
        // it twice changes nothing (GET, HEAD); any other only when it could not be written (a
        // job record, a remote compile, a password change must not run twice).
        const stale =
          req.reusedSocket &&
          response === undefined &&
          (code === 'EPIPE' ||
            (code === 'ECONNRESET' && (init.method === 'GET' || init.method === 'HEAD')));
        reject(stale ? new StaleConnectionError(err) : closedEarly(err));
      });
      req.on('response', (res: IncomingMessage) => {
        response = res;
        if (init.headersOnly) {
          clearTimeout(timer);
        } else {
          // Bounds reading the body too; an unref'd timer never keeps the process alive.
          timer.unref();
        }
        res.on('close', finish);
        // An error of the body (a timeout, an abort, a close) comes out of its reading; on a body
        // nobody reads it goes nowhere (IncomingMessage emits no error without a listener).
        const status = res.statusCode ?? 502;
        const empty = EMPTY_STATUSES.has(status) || init.method === 'HEAD';
        if (empty) res.resume();
        resolve(new NodeResponse(res, status, empty));
      });
      req.end(init.body);
    });
  }
}

class NodeResponse implements HttpResponse {
  readonly ok: boolean;
  readonly headers: { get(name: string): string | null };
  readonly body: ResponseBody | null;

  constructor(
    res: IncomingMessage,
    readonly status: number,
    empty: boolean,
  ) {
    this.ok = status >= 200 && status <= 299;
    this.headers = {
      get: (name) => {
        const value = res.headers[name.toLowerCase()];
        if (value === undefined) return null;
        return Array.isArray(value) ? value.join(', ') : value;
      },
    };
    this.body = empty ? null : new NodeBody(res);
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    // A copy of its own: a small Buffer may share its memory with others.
    const bytes = await this.bytes();
    const copy = new ArrayBuffer(bytes.byteLength);
    new Uint8Array(copy).set(bytes);
    return copy;
  }

  async text(): Promise<string> {
    return (await this.bytes()).toString('utf8');
  }

  async json(): Promise<unknown> {
    return JSON.parse(await this.text()) as unknown;
  }

  private async bytes(): Promise<Buffer> {
    if (this.body === null) return Buffer.alloc(0);
    const chunks: Uint8Array[] = [];
    for await (const chunk of this.body) chunks.push(chunk);
    return Buffer.concat(chunks);
  }
}

class NodeBody implements ResponseBody {
  private used = false;

  constructor(private readonly res: IncomingMessage) {}

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    if (this.used) throw new TypeError('the body was already read');
    this.used = true;
    const res = this.res;
    // Node marks an answer cut short (fewer bytes than its content-length, a chunked body
    // without its end) as not complete; the stream itself may just end.
    try {
      for await (const chunk of res) yield chunk as Buffer;
    } catch (err) {
      throw closedEarly(err as Error);
    }
    if (!res.complete) throw closedEarly(undefined);
  }

  cancel(): Promise<void> {
    this.used = true;
    this.res.destroy();
    return Promise.resolve();
  }
}

/** A reused connection the server had closed: the request may be sent again. */
class StaleConnectionError extends Error {
  constructor(readonly original: Error) {
    super(original.message, { cause: original });
  }
}

function unwrap(err: unknown): unknown {
  return err instanceof StaleConnectionError ? closedEarly(err.original) : err;
}

/**
 * Node's "socket hang up" and "aborted" (the server closed the connection before the whole
 * answer) as one error that says so; a timeout, an abort and other errors as they are.
 */
function closedEarly(err: Error | undefined): Error {
  const code = err === undefined ? undefined : (err as NodeJS.ErrnoException).code;
  const message = err?.message;
  if (
    err !== undefined &&
    !(code === 'ECONNRESET' && /^(socket hang up|aborted)$/.test(message ?? ''))
  )
    return err;
  return Object.assign(
    new Error('the connection closed before the whole answer arrived', { cause: err }),
    { code: 'ERR_STREAM_PREMATURE_CLOSE' },
  );
}

/** What fetch rejects with when its signal aborts: the signal's reason. */
function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error
    ? signal.reason
    : Object.assign(new Error('This operation was aborted'), { name: 'AbortError' });
}
