/**
 * fetch() for a coordinator whose certificate the user pinned at `muster login`: the same
 * Response as Node's fetch, over node:https with a connection that is handed to the request only
 * once the certificate matched the pin (src/common/pinned-tls.ts). Node's fetch cannot do
 * that: it takes no TLS options without an undici dispatcher, which is not a dependency here.
 * One connection per request, like the client's fetch calls in practice.
 */
import type { IncomingMessage } from 'node:http';
import { request, type RequestOptions } from 'node:https';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { connectPinned } from '../common/pinned-tls.js';

export interface PinnedRequest {
  method: string;
  headers: Record<string, string>;
  body?: string | Uint8Array | undefined;
  signal?: AbortSignal | undefined;
}

export function pinnedFetch(
  url: URL,
  init: PinnedRequest,
  pins: readonly string[],
): Promise<Response> {
  return new Promise<Response>((resolve, reject) => {
    const { signal } = init;
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const options: RequestOptions = {
      method: init.method,
      // Without an agent the client knows no default port: the Host header would say :80.
      defaultPort: 443,
      headers:
        init.body === undefined
          ? init.headers
          : { ...init.headers, 'content-length': String(Buffer.byteLength(init.body)) },
      // The http client waits for the callback before it writes a byte of the request.
      createConnection: ((_: unknown, ready: (err: Error | null, socket?: Socket) => void) => {
        connectPinned({ host: url.hostname, port: Number(url.port || 443) }, pins, (err, socket) =>
          ready(err, socket),
        );
        return undefined;
      }) as unknown as RequestOptions['createConnection'],
    };
    const req = request(url, options);
    const onAbort = (): void => {
      const reason = abortReason(signal!);
      req.destroy(reason);
      reject(reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', (err) => {
      signal?.removeEventListener('abort', onAbort);
      reject(err);
    });
    req.on('response', (res: IncomingMessage) => {
      res.on('close', () => signal?.removeEventListener('abort', onAbort));
      const headers = new Headers();
      for (let i = 0; i + 1 < res.rawHeaders.length; i += 2)
        headers.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
      const status = res.statusCode ?? 502;
      const empty = status === 204 || status === 205 || status === 304 || init.method === 'HEAD';
      if (empty) res.resume();
      resolve(
        new Response(empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), {
          status,
          statusText: res.statusMessage ?? '',
          headers,
        }),
      );
    });
    req.end(init.body);
  });
}

/** What fetch rejects with when its signal aborts: the signal's reason. */
function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error
    ? signal.reason
    : Object.assign(new Error('This operation was aborted'), { name: 'AbortError' });
}
