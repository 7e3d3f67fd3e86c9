/** Files named on a daemon's command line: read once at start-up, with errors naming the flag. */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { MusterError } from '../protocol/errors.js';

/** The file's text, or INVALID_CONFIG saying which flag and why. */
export async function readConfigFile(file: string, flag: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new MusterError(
      'INVALID_CONFIG',
      `${flag} ${file}: ${(err as Error).message}`,
      undefined,
      {
        cause: err,
      },
    );
  }
}

/** The SHA-256 fingerprint of a PEM certificate, or INVALID_CONFIG when it is not one. */
export function certificateFingerprint(pem: string, flag: string): string {
  try {
    return new X509Certificate(pem).fingerprint256;
  } catch (err) {
    throw new MusterError('INVALID_CONFIG', `${flag} is not a PEM certificate`, undefined, {
      cause: err,
    });
  }
}
