/**
 * With task users (task-users.ts) every host process runs as its instance's user, with the
 * agent's own Node.js (host-process.ts forks process.execPath). A Node.js those users cannot run
 * — under a directory closed to other users (a 0700 home, a mktemp dir) or itself not
 * executable by them — would fail every host start (HOST_START_FAILED) at the first task of
 * every instance. The agent finds out at start instead: it runs that Node as a user with no
 * rights of its own (nobody's uid and gid, as a task user is to root's files), and refuses to
 * start with RUNTIME_NOT_EXECUTABLE, naming what is closed. Where it cannot become nobody (a
 * user namespace without that uid) the modes alone cannot tell (ACLs), so it only warns.
 */
import { spawn } from 'node:child_process';
import { realpath, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { MusterError } from '../protocol/errors.js';

/** The uid and gid of `nobody` on Debian and most Linux: a user that owns nothing. */
const NOBODY = 65534;
/** A bound on the check: `node --version` answers in tens of milliseconds. */
const CHECK_TIMEOUT_MS = 30_000;

/** Resolves when task users can run `program`, with a warning when it could not be told. */
export async function checkRuntimeForTaskUsers(
  program = process.execPath,
): Promise<{ warning?: string }> {
  const ran = await runAsNobody(program);
  if (ran.ok) return {};
  const closed = await closedToOthers(program);
  const what =
    closed.length > 0
      ? `${closed.join(', ')} ${closed.length === 1 ? 'is' : 'are'} closed to other users`
      : ran.why;
  if (ran.unsure) {
    if (closed.length === 0) return {};
    return {
      warning: `task users may not be able to run the agent's Node.js ${program}: ${what} (could not run it as nobody to be sure: ${ran.why})`,
    };
  }
  throw new MusterError(
    'RUNTIME_NOT_EXECUTABLE',
    `the agent runs tasks as users of their own, and they cannot run its Node.js ${program}: ` +
      `${what}. Let other users run it (chmod o+x on that path), or run the agent with a ` +
      'Node.js installed where every user can (a release bundle, /usr/bin/node), or with ' +
      '--task-users off',
  );
}

type Ran = { ok: true } | { ok: false; why: string; unsure: boolean };

/** Runs `program --version` as nobody. */
function runAsNobody(program: string): Promise<Ran> {
  // EACCES and ENOENT are about the program; EPERM or EINVAL: becoming nobody failed.
  const failed = (err: NodeJS.ErrnoException): Ran => ({
    ok: false,
    why: `running it failed (${err.code ?? err.message})`,
    unsure: err.code !== 'EACCES' && err.code !== 'ENOENT',
  });
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn(program, ['--version'], {
        uid: NOBODY,
        gid: NOBODY,
        cwd: '/',
        env: {},
        stdio: 'ignore',
        timeout: CHECK_TIMEOUT_MS,
      });
    } catch (err) {
      // Not root: the uid cannot be changed at all (thrown, not emitted).
      resolve(failed(err as NodeJS.ErrnoException));
      return;
    }
    child.on('error', (err: NodeJS.ErrnoException) => resolve(failed(err)));
    child.on('exit', (code, signal) =>
      resolve(
        code === 0
          ? { ok: true }
          : { ok: false, why: `it exited with ${signal ?? `code ${code}`}`, unsure: false },
      ),
    );
  });
}

/** The directories on the program's path (as given and resolved) and files others cannot use. */
async function closedToOthers(program: string): Promise<string[]> {
  const paths = new Set<string>();
  for (const file of new Set([program, await realpath(program).catch(() => program)])) {
    paths.add(file);
    for (let dir = dirname(file); ; dir = dirname(dir)) {
      paths.add(dir);
      if (dirname(dir) === dir) break;
    }
  }
  const closed: string[] = [];
  for (const path of [...paths].sort()) {
    const mode = await stat(path).then(
      (s) => s.mode,
      () => undefined,
    );
    if (mode !== undefined && (mode & 0o001) === 0) closed.push(path);
  }
  return closed;
}
