/**
 * The service's Unix socket on disk: its directory must be this user's alone (0700, a real
 * directory, owned by us — checked with lstat, so a symlink planted in /tmp is refused), and a
 * socket file left by a crashed service is removed only when the kernel refuses connections on
 * it (nobody listens): a service too busy to answer in time still owns its socket.
 */
import { connect } from 'node:net';
import { lstat, mkdir, rm } from 'node:fs/promises';
import { MusterError } from '../../protocol/errors.js';

/** Creates the directory (0700) when missing; throws unless it is ours and private. */
export async function prepareSocketDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const s = await lstat(dir);
  const uid = process.getuid?.();
  if (!s.isDirectory()) {
    throw new MusterError(
      'INVALID_CONFIG',
      `${dir} is not a directory (a symlink?): refusing it for the compile service's socket`,
    );
  }
  if (uid !== undefined && s.uid !== uid) {
    throw new MusterError(
      'INVALID_CONFIG',
      `${dir} belongs to another user: refusing it for the compile service's socket`,
    );
  }
  if ((s.mode & 0o077) !== 0) {
    throw new MusterError(
      'INVALID_CONFIG',
      `${dir} is open to other users (mode ${(s.mode & 0o777).toString(8)}, want 700): refusing it for the compile service's socket`,
    );
  }
}

/** Whether something accepts a connection on the socket (bounded by `timeoutMs`). */
export async function socketAnswers(path: string, timeoutMs = 1_000): Promise<boolean> {
  return (await probeSocket(path, timeoutMs)) === 'accepts';
}

/**
 * What a connection attempt says about a socket path: `accepts`; `refused` when nobody listens
 * there (ECONNREFUSED: a socket file its service left behind) or nothing is there; `busy` when it
 * did not say within `timeoutMs` or its backlog is full (EAGAIN): a listener that is there.
 */
export function probeSocket(
  path: string,
  timeoutMs = 1_000,
): Promise<'accepts' | 'refused' | 'busy'> {
  return new Promise((resolve) => {
    const socket = connect(path);
    const done = (answer: 'accepts' | 'refused' | 'busy'): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done('busy'), timeoutMs);
    socket.once('connect', () => done('accepts'));
    socket.once('error', (err: NodeJS.ErrnoException) =>
      done(err.code === 'ECONNREFUSED' || err.code === 'ENOENT' ? 'refused' : 'busy'),
    );
  });
}

/**
 * Makes the path free for a new socket: nothing there, or a socket nobody listens on (removed).
 * Throws CONFLICT when a service answers there or is there but busy (never removes a socket
 * that still accepts), INVALID_CONFIG when it is some other file.
 */
export async function clearStaleSocket(path: string): Promise<void> {
  const s = await lstat(path).catch(() => null);
  if (s === null) return;
  if (!s.isSocket()) {
    throw new MusterError('INVALID_CONFIG', `${path} exists and is not a socket: not touching it`);
  }
  const probe = await probeSocket(path);
  if (probe !== 'refused') {
    throw new MusterError(
      'CONFLICT',
      probe === 'accepts'
        ? `a compile service already answers on ${path}`
        : `a compile service is listening on ${path} but busy`,
      { path },
    );
  }
  await rm(path, { force: true });
}
