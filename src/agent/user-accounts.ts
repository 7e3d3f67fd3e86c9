/**
 * System accounts for task users: looked up with getent, created with useradd. Creations are
 * serialised in this process and retried while another process (another agent, an admin) holds
 * the lock on /etc/passwd or /etc/group.
 */
import { execFile } from 'node:child_process';
import { MusterError } from '../protocol/errors.js';

export interface SystemUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/** What TaskUsers needs of the system's user database; a fake in unit tests. */
export interface UserAccounts {
  lookup(name: string): Promise<SystemUser | undefined>;
  /** Creates a system user with a group of its own, or returns the one that exists. */
  ensure(name: string, comment: string): Promise<SystemUser>;
  /** Deletes a user (and its group) this agent created; one that is gone already is fine. */
  remove(name: string): Promise<void>;
}

const LOCKED_EXIT_CODES = new Set([1, 10]); // cannot update (lock) /etc/passwd, /etc/group
const NAME_IN_USE = 9;
const ATTEMPTS = 40;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      const code =
        err === null
          ? 0
          : typeof err.code === 'number'
            ? err.code
            : err.code === 'ENOENT'
              ? 127
              : 1;
      resolve({ code, stdout, stderr: stderr || (err?.message ?? '') });
    });
  });
}

function failed(message: string): MusterError {
  return new MusterError('TASK_USER_FAILED', message);
}

export class SystemUserAccounts implements UserAccounts {
  private chain: Promise<unknown> = Promise.resolve();

  async lookup(name: string): Promise<SystemUser | undefined> {
    const passwd = await run('getent', ['passwd', name]);
    if (passwd.code === 2) return undefined; // not found
    if (passwd.code !== 0) throw failed(`getent passwd ${name}: ${passwd.stderr.trim()}`);
    const fields = passwd.stdout.trim().split(':');
    const uid = Number(fields[2]);
    const gid = Number(fields[3]);
    if (fields[0] !== name || !Number.isInteger(uid) || !Number.isInteger(gid))
      throw failed(`getent passwd ${name}: unexpected answer`);
    return { name, uid, gid };
  }

  ensure(name: string, comment: string): Promise<SystemUser> {
    const next = this.chain.then(() => this.create(name, comment));
    // The caller gets the error from `next`; the chain only keeps the calls in order.
    this.chain = next.catch(() => undefined);
    return next;
  }

  remove(name: string): Promise<void> {
    const next = this.chain.then(() => this.delete(name));
    // As in ensure.
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async delete(name: string): Promise<void> {
    let lastError = '';
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      if ((await this.lookup(name)) === undefined) return;
      const result = await run('userdel', [name]);
      if (result.code === 0) return;
      lastError = `userdel exited with ${result.code}: ${result.stderr.trim()}`;
      if (!LOCKED_EXIT_CODES.has(result.code)) break;
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 200));
    }
    throw failed(`cannot remove the task user ${name}: ${lastError}`);
  }

  private async create(name: string, comment: string): Promise<SystemUser> {
    let lastError = '';
    let groupArgs = ['--user-group'];
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const existing = await this.lookup(name);
      if (existing) return checked(existing);
      const result = await run('useradd', [
        '--system',
        '--no-create-home',
        '--home-dir',
        '/nonexistent',
        '--shell',
        '/usr/sbin/nologin',
        '--comment',
        comment,
        ...groupArgs,
        name,
      ]);
      if (result.code === 0) continue; // look it up
      lastError = `useradd exited with ${result.code}: ${result.stderr.trim()}`;
      if (result.code === NAME_IN_USE) {
        // Made meanwhile by someone else (looked up next), or a group of that name left behind
        // by a removed user: then the new user joins it.
        if ((await run('getent', ['group', name])).code === 0) groupArgs = ['--gid', name];
        continue;
      }
      if (!LOCKED_EXIT_CODES.has(result.code)) break;
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 200));
    }
    throw failed(`cannot create the task user ${name}: ${lastError}`);
  }
}

/** A task user must never be root, whatever the user database says. */
function checked(user: SystemUser): SystemUser {
  if (user.uid === 0 || user.gid === 0)
    throw failed(`the task user ${user.name} has uid or gid 0; refusing to use it`);
  return user;
}
