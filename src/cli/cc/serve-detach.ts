/**
 * `muster cc --serve --detach`: starts the per-user compile service in the background (its
 * output to a log next to the socket) and returns once its socket answers. `muster build` starts
 * it the same way when it has the service host its build.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cliEntry } from '../../protocol/client/package-root.js';
import { MusterError } from '../../protocol/errors.js';
import { withAbsolutePaths } from './env-paths.js';
import { prepareSocketDir, socketAnswers } from './socket-path.js';

/** The log of a detached service, next to its socket; started afresh past this size. */
export const SERVE_LOG = 'cc-serve.log';
const SERVE_LOG_MAX_BYTES = 1024 * 1024;
/** How long `--detach` waits for the service's socket to answer. */
const DETACH_WAIT_MS = 10_000;

/** Starts `--serve` in the background (its output to a log next to the socket); waits for it. */
export async function detach(
  socket: string,
  idleExit: string,
  cacheDir: string | undefined,
  say: (text: string) => void = (text) => void process.stderr.write(text),
): Promise<void> {
  if (await socketAnswers(socket)) return;
  const dir = dirname(socket);
  await prepareSocketDir(dir);
  const logFile = join(dir, SERVE_LOG);
  let size = 0;
  try {
    size = statSync(logFile).size;
  } catch {
    // No log yet.
  }
  const fd = openSync(logFile, size > SERVE_LOG_MAX_BYTES ? 'w' : 'a', 0o600);
  const main = cliEntry();
  const child = spawn(
    process.execPath,
    [
      main,
      'cc',
      '--serve',
      '--socket',
      socket,
      '--idle-exit',
      idleExit,
      ...(cacheDir === undefined ? [] : ['--cache-dir', cacheDir]),
    ],
    // cwd '/': a daemon does not keep the directory of the build that started it in use (the
    // paths its environment gives relative to this one are made absolute).
    {
      detached: true,
      stdio: ['ignore', fd, fd],
      cwd: '/',
      env: withAbsolutePaths(process.env, process.cwd()),
    },
  );
  closeSync(fd);
  const ended: { code: number | null } = { code: null };
  child.once('exit', (code) => {
    ended.code = code ?? 1;
  });
  child.unref();
  const deadline = Date.now() + DETACH_WAIT_MS;
  const started = (): void => {
    say(`muster cc: compile service started (pid ${child.pid}, socket ${socket})\n`);
  };
  while (Date.now() < deadline) {
    if (await socketAnswers(socket, 500)) return started();
    if (ended.code !== null) break;
    await sleep(20);
  }
  // It may have exited because another service won the race to the socket.
  if (await socketAnswers(socket, 500)) return;
  throw new MusterError(
    'INTERNAL',
    `the compile service did not start on ${socket}${ended.code === null ? '' : ` (exit code ${ended.code})`}; see ${logFile}`,
  );
}
