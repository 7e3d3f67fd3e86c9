/**
 * HTTP(S) between a primary and its backup. TLS is verified the usual way (chain and host name)
 * against Node's roots and NODE_EXTRA_CA_CERTS plus the certificate the peer is known by (a
 * self-signed one is its own root), and the peer's certificate must also match a pinned SHA-256
 * fingerprint when one is known: that check runs inside the handshake (checkServerIdentity), so
 * a connection that fails it is closed before the request, and its bearer secret, is written.
 */
import { createWriteStream, readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { pipeline } from 'node:stream/promises';
import {
  checkServerIdentity,
  rootCertificates,
  type PeerCertificate,
  type TLSSocket,
} from 'node:tls';
import { sameFingerprint } from '../../protocol/fingerprint.js';
import { MusterError, isErrorCode } from '../../protocol/errors.js';

export interface PeerTls {
  /** Extra trusted certificate(s), PEM: the peer's own when it is self-signed. */
  ca?: string | undefined;
  /**
   * Pinned SHA-256 fingerprint(s) (colon hex, any case): the peer's certificate must match one.
   * Several while a primary rolls its certificate over (the current one and the announced next).
   */
  fingerprint?: string | readonly string[] | undefined;
}

export interface PeerRequest {
  method?: string;
  body?: unknown;
  query?: Record<string, string | number | undefined>;
  timeoutMs?: number;
  /** Write the body to this file instead of parsing JSON (snapshots, blobs). */
  toFile?: string;
  signal?: AbortSignal;
}

export interface PeerResponse<T> {
  body: T;
  headers: IncomingMessage['headers'];
  /** SHA-256 fingerprint of the peer's certificate (https only). */
  fingerprint: string | undefined;
}

const MAX_JSON_BYTES = 64 * 1024 * 1024;

/**
 * The certificates Node trusts by default: its roots plus NODE_EXTRA_CA_CERTS, which an explicit
 * `ca` would otherwise replace.
 */
let defaultTrust: string[] | undefined;
function trusted(): string[] {
  if (defaultTrust) return defaultTrust;
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  let extraPem: string[] = [];
  if (extra) {
    try {
      extraPem = [readFileSync(extra, 'utf8')];
    } catch {
      // Node itself warns about an unreadable NODE_EXTRA_CA_CERTS at start.
    }
  }
  defaultTrust = [...rootCertificates, ...extraPem];
  return defaultTrust;
}

export class PeerClient {
  readonly url: string;

  constructor(
    url: string,
    private readonly secret: () => string,
    private readonly tls: () => PeerTls,
    private readonly identity: Record<string, string> = {},
  ) {
    this.url = url.replace(/\/+$/, '');
  }

  async json<T>(path: string, options: PeerRequest = {}): Promise<PeerResponse<T>> {
    return this.send<T>(path, options);
  }

  private send<T>(path: string, options: PeerRequest): Promise<PeerResponse<T>> {
    const url = new URL(`${this.url}${path}`);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const body = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
    const tls = this.tls();
    const https = url.protocol === 'https:';
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.secret()}`,
      accept: 'application/json',
      ...this.identity,
    };
    if (body) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(body.length);
    }
    const timeoutMs = options.timeoutMs ?? 10_000;
    let pinMismatch: string | undefined;
    const pins =
      typeof tls.fingerprint === 'string' ? [tls.fingerprint] : [...(tls.fingerprint ?? [])];
    const verify = (host: string, cert: PeerCertificate): Error | undefined => {
      const error = checkServerIdentity(host, cert);
      if (error) return error;
      if (pins.length > 0 && !pins.some((pin) => sameFingerprint(pin, cert.fingerprint256))) {
        pinMismatch = cert.fingerprint256;
        return new Error('certificate fingerprint mismatch');
      }
      return undefined;
    };
    return new Promise<PeerResponse<T>>((resolve, reject) => {
      const req = (https ? httpsRequest : httpRequest)(url, {
        method: options.method ?? 'GET',
        headers,
        ...(https
          ? {
              ca: tls.ca ? [...trusted(), tls.ca] : trusted(),
              checkServerIdentity: verify,
              agent: false,
            }
          : { agent: false }),
        ...(options.signal ? { signal: options.signal } : {}),
      });
      const timer = setTimeout(
        () => req.destroy(new MusterError('REQUEST_TIMEOUT', `${url.host} did not answer in time`)),
        timeoutMs,
      );
      timer.unref();
      const fail = (err: unknown): void => {
        clearTimeout(timer);
        reject(
          pinMismatch === undefined
            ? toPeerError(err, url)
            : new MusterError(
                'TLS_FINGERPRINT_MISMATCH',
                `${url.host} presented certificate ${pinMismatch}, not the pinned ${pins.join(' or ')}`,
              ),
        );
      };
      req.on('error', fail);
      req.on('response', (res) => {
        const fingerprint = https
          ? (res.socket as TLSSocket).getPeerCertificate().fingerprint256
          : undefined;
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300 && options.toFile !== undefined) {
          pipeline(res, createWriteStream(options.toFile, { mode: 0o600 }))
            .then(() => {
              clearTimeout(timer);
              resolve({ body: undefined as T, headers: res.headers, fingerprint });
            })
            .catch(fail);
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_JSON_BYTES) {
            res.destroy(new MusterError('PAYLOAD_TOO_LARGE', `${url.host} sent too much`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', fail);
        res.on('end', () => {
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = text === '' ? undefined : JSON.parse(text);
          } catch {
            reject(new MusterError('INTERNAL', `${url.host} answered ${path} with non-JSON`));
            return;
          }
          if (status >= 200 && status < 300) {
            resolve({ body: parsed as T, headers: res.headers, fingerprint });
            return;
          }
          reject(errorFromBody(parsed, status, url));
        });
      });
      req.end(body);
    });
  }
}

function errorFromBody(parsed: unknown, status: number, url: URL): MusterError {
  const error = (parsed as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const code = typeof error?.code === 'string' && isErrorCode(error.code) ? error.code : 'INTERNAL';
  const message =
    typeof error?.message === 'string' ? error.message : `${url.host} answered HTTP ${status}`;
  return new MusterError(code, message);
}

function toPeerError(err: unknown, url: URL): MusterError {
  if (err instanceof MusterError) return err;
  const e = err as NodeJS.ErrnoException;
  return new MusterError('UNREACHABLE', `${url.host}: ${e.code ?? ''} ${e.message}`.trim(), {
    url: url.origin,
    // The system's or TLS's own code (ECONNREFUSED, ERR_TLS_CERT_ALTNAME_INVALID…): a caller
    // explains it (backup-health.ts).
    ...(typeof e.code === 'string' ? { cause: e.code } : {}),
  });
}
