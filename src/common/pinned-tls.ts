/**
 * TLS to a server known by its certificate's SHA-256 fingerprint (pinned when a user confirmed
 * it) instead of by a certificate authority, and a look at a server's certificate before
 * trusting it. A self-signed certificate never passes Node's chain check, and Node skips
 * checkServerIdentity for a chain it could not verify, so the pin cannot be checked there:
 * connectPinned hands the socket over only after the handshake, once the fingerprint matched,
 * so nothing (no request line, no token, no password) is written on a connection that fails it.
 * The agent client (client/agent-client.ts) checks its agents' pins the same way.
 */
import { isIP } from 'node:net';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { MusterError } from '../protocol/errors.js';
import { sameFingerprint } from '../protocol/fingerprint.js';

export interface TlsTarget {
  host: string;
  port: number;
  /** Per connection: the handshake must be over in this time. */
  timeoutMs?: number;
}

/** The certificate a server presented, as a user confirms it. */
export interface PresentedCertificate {
  /** SHA-256 of the DER, colon-separated upper-case hex (what openssl and the daemons print). */
  fingerprint: string;
  /** Whether this machine trusts it without a pin (system roots, NODE_EXTRA_CA_CERTS, host name). */
  trusted: boolean;
  /** Why not, as OpenSSL or Node says it (e.g. DEPTH_ZERO_SELF_SIGNED_CERT). */
  reason: string | undefined;
  subject: string;
  /** The names it covers (subjectAltName), e.g. "DNS:build-1, IP Address:10.0.0.5". */
  names: string | undefined;
  validTo: string;
}

/**
 * Connects and calls back with the socket once the handshake is over and the certificate
 * matches one of `pins`; otherwise with TLS_FINGERPRINT_MISMATCH (the socket closed) or the
 * connection's error. Returns nothing: Node's http client waits for the callback
 * (its createConnection option) before it writes the request.
 */
export function connectPinned(
  target: TlsTarget,
  pins: readonly string[],
  callback: (err: Error | null, socket?: TLSSocket) => void,
): void {
  let done = false;
  const finish = (err: Error | null, socket?: TLSSocket): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    callback(err, socket);
  };
  const socket = connect(
    {
      ...tlsOptions(target),
      // The pin decides, below: a self-signed certificate fails every chain check.
      rejectUnauthorized: false,
    },
    () => {
      const actual = socket.getPeerX509Certificate()?.fingerprint256;
      if (!pins.some((pin) => sameFingerprint(pin, actual))) {
        socket.destroy();
        finish(
          new MusterError(
            'TLS_FINGERPRINT_MISMATCH',
            `${target.host}:${target.port} presented a certificate with fingerprint ${actual ?? '(none)'}, not the pinned ${pins.join(' or ')}`,
            { actual, expected: [...pins] },
          ),
        );
        return;
      }
      socket.off('error', onError);
      finish(null, socket);
    },
  );
  const onError = (err: Error): void => finish(err);
  socket.on('error', onError);
  const timer = setTimeout(() => {
    const err = Object.assign(new Error('the TLS handshake timed out'), { code: 'ETIMEDOUT' });
    socket.destroy();
    finish(err);
  }, target.timeoutMs ?? 30_000);
  timer.unref();
}

/** Connects, reads the server's certificate, says whether it is trusted, and closes. */
export function presentedCertificate(target: TlsTarget): Promise<PresentedCertificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ ...tlsOptions(target), rejectUnauthorized: false }, () => {
      const cert = socket.getPeerX509Certificate();
      const authorized = socket.authorized;
      const reason = socket.authorizationError;
      socket.destroy();
      clearTimeout(timer);
      if (!cert) {
        reject(new Error('the server presented no certificate'));
        return;
      }
      resolve({
        fingerprint: cert.fingerprint256,
        trusted: authorized,
        reason: reason === undefined || reason === null ? undefined : String(reason),
        subject: cert.subject.replace(/\n/g, ', '),
        names: cert.subjectAltName,
        validTo: cert.validTo,
      });
    });
    socket.once('error', (err: Error) => {
      clearTimeout(timer);
      reject(err);
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error('the TLS handshake timed out'), { code: 'ETIMEDOUT' }));
    }, target.timeoutMs ?? 30_000);
    timer.unref();
  });
}

function tlsOptions(target: TlsTarget): ConnectionOptions {
  const host = target.host.replace(/^\[(.*)\]$/, '$1');
  return {
    host,
    port: target.port,
    // SNI takes names only, never an address.
    ...(isIP(host) === 0 ? { servername: host } : {}),
    minVersion: 'TLSv1.2',
  };
}
