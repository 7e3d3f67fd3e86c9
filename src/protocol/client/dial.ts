/**
 * Opens the byte stream to an agent: TLS pinned to the certificate fingerprint the agent printed
 * (or checked against a CA), or plain TCP when asked for explicitly. A fingerprint that does not
 * match ends the attempt before a byte of the protocol is sent.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { MusterError } from '../errors.js';
import { normaliseFingerprint } from '../fingerprint.js';
import type { AgentClientOptions } from './agent-client-options.js';

export async function dial(
  options: Pick<AgentClientOptions, 'host' | 'port' | 'tls' | 'localAddress' | 'connectTimeoutMs'>,
): Promise<Socket | TLSSocket> {
  const timeoutMs = options.connectTimeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const common = {
      host: options.host,
      port: options.port,
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
    };
    let socket: Socket | TLSSocket;
    const fail = (err: MusterError): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(
      () =>
        fail(
          new MusterError(
            'CONNECTION_CLOSED',
            `connecting to ${options.host}:${options.port} timed out`,
          ),
        ),
      timeoutMs,
    );
    const tls = options.tls;
    if (tls === false) {
      socket = netConnect(common, () => {
        clearTimeout(timer);
        socket.setNoDelay(true);
        resolve(socket);
      });
    } else {
      const pinned = 'fingerprint' in tls ? normaliseFingerprint(tls.fingerprint) : undefined;
      socket = tlsConnect(
        {
          ...common,
          servername: tls.servername ?? (isIp(options.host) ? undefined : options.host),
          minVersion: 'TLSv1.2',
          ...('ca' in tls ? { ca: tls.ca } : { rejectUnauthorized: false }),
        },
        () => {
          const tlsSocket = socket as TLSSocket;
          if (pinned !== undefined) {
            const actual = tlsSocket.getPeerX509Certificate()?.fingerprint256;
            if (actual === undefined || normaliseFingerprint(actual) !== pinned) {
              fail(
                new MusterError(
                  'TLS_FINGERPRINT_MISMATCH',
                  `the agent's certificate fingerprint is ${actual ?? 'missing'}, expected ${tls && 'fingerprint' in tls ? tls.fingerprint : ''}`,
                  { actual, expected: pinned },
                ),
              );
              return;
            }
          }
          clearTimeout(timer);
          tlsSocket.setNoDelay(true);
          resolve(tlsSocket);
        },
      );
    }
    socket.once('error', (err: NodeJS.ErrnoException) =>
      fail(
        new MusterError(
          'CONNECTION_CLOSED',
          `cannot connect to ${options.host}:${options.port}: ${err.message}`,
          { errno: err.code },
        ),
      ),
    );
  });
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}
