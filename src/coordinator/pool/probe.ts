/**
 * Reads an agent's certificate fingerprint without trusting it, so an admin can compare it with
 * the one `muster agent` printed before pinning it (the web UI's "add agent"). Only the TLS
 * handshake happens: nothing is sent, and the connection is closed at once.
 */
import { connect } from 'node:tls';
import { MusterError } from '../../protocol/errors.js';

export function probeFingerprint(host: string, port: number, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host,
      port,
      rejectUnauthorized: false,
      ...(/^[\d.]+$|:/.test(host) ? {} : { servername: host }),
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new MusterError('UNREACHABLE', `${host}:${port} did not answer a TLS handshake in time`),
      );
    }, timeoutMs);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      socket.destroy();
      resolve(fingerprint);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new MusterError(
          'UNREACHABLE',
          `${host}:${port}: ${err.code === 'ECONNREFUSED' ? 'nothing listens there' : err.message} (is the agent running with TLS?)`,
        ),
      );
    });
  });
}
