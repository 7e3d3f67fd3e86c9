/**
 * Task users. Where the agent runs as root (`--task-users auto|on`), each instance's host
 * process, and so every task it runs, runs as a system user of that instance's own:
 * `muster-<16 hex digits>` (see nameOf), with a group of the same name, created
 * with useradd before the instance's first task and recorded in its instance record (reused
 * after restarts). If it cannot be created or prepared, the instance's tasks fail with
 * TASK_USER_FAILED: they never run as root.
 *
 * What a task user may touch (docs/agent.md, "Task users"):
 *
 *   <data>/                        root 0700 (0711 when <temp> is inside it); everything in it root's
 *   <temp>/blobs/                  root 0700: the shared store, closed to every task
 *   <temp>/instances/              root 0711: no listing
 *   <temp>/instances/<dir>/        root:<group> 0750: its own user only
 *     versions/                    root:<group> 0750, versions read-only (0555/0444, root's)
 *     manifests/, output/          root 0700
 *     blobs/                       root:<group> 1770: the host's blob dir (blob-view.ts)
 *     work/, home/, tmp/           <user>:<group> 0700: work dirs, HOME, TMPDIR
 *
 * The agent never writes, as root, through a path its task user could change: every directory
 * it creates or links into is root's and not writable by the user (or sticky, in blobs/); what
 * lives in the user's own dirs (work dirs, stray dirs in blobs/) is removed by `rm` running as
 * that user, and process groups are killed by `kill` running as that user, so a host that
 * names someone else's process group kills nothing.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, chown, lstat, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import type { Logger } from 'pino';
import { MusterError } from '../protocol/errors.js';
import type { BlobStore } from '../common/blob-store.js';
import type { TaskResult } from '../protocol/task-types.js';
import { BlobView } from './blob-view.js';
import type { Instance } from './instances.js';
import { SystemUserAccounts, type SystemUser, type UserAccounts } from './user-accounts.js';

export interface TaskUsersOptions {
  dataDir: string;
  tempDir: string;
  blobs: BlobStore;
  log: Logger;
  accounts?: UserAccounts;
}

/** How a host process of an instance is started: as whom, with what around it. */
export interface HostUser {
  uid: number;
  gid: number;
  /** MUSTER_BLOB_DIR: the instance's blob view, not the shared store. */
  blobDir: string;
  /** HOME, TMPDIR, USER and LOGNAME, inside the instance's dir. */
  env: Record<string, string>;
}

export class TaskUsers {
  private readonly prepared = new Map<Instance, Promise<SystemUser>>();
  private readonly view: BlobView;
  private readonly accounts: UserAccounts;
  private agentId: string | undefined;

  constructor(private readonly options: TaskUsersOptions) {
    this.view = new BlobView(options.blobs);
    this.accounts = options.accounts ?? new SystemUserAccounts();
  }

  /**
   * The user name of an instance on this agent: `muster-` and 16 hex digits of
   * SHA-256(agent id, instance dir name), 23 characters. The agent id is in it so that two agents
   * on one machine (two data dirs) never share a user, even for instances of the same key: each
   * agent binds its instances to keys of its own.
   */
  static nameOf(agentId: string, dirName: string): string {
    return `muster-${createHash('sha256').update(`${agentId}\0${dirName}`).digest('hex').slice(0, 16)}`;
  }

  /**
   * At start, with the agent's id: secures the agent's own dirs. The data dir is root's alone
   * (search-only for others when the temp dir is inside it), the store closed, the instances dir
   * unlistable; a temp dir that is shared (world-writable or sticky, like /tmp) is left as it is,
   * else made search-only. Warns when task users could not reach their instances' dirs (a
   * parent without o+x): their tasks would fail with TASK_USER_FAILED, saying why.
   */
  async init(agentId: string): Promise<void> {
    this.agentId = agentId;
    const { dataDir, tempDir, blobs, log } = this.options;
    const tempInData = isInside(dataDir, tempDir);
    await chmod(dataDir, tempInData ? 0o711 : 0o700);
    // What an older agent (or one without task users) left open: owner-only from now on.
    for (const name of await readdir(dataDir)) {
      const path = join(dataDir, name);
      if (path === tempDir || isInside(path, tempDir)) continue;
      const info = await lstat(path);
      if ((info.isFile() || info.isDirectory()) && (info.mode & 0o077) !== 0) {
        await chmod(path, info.mode & 0o700);
      }
    }
    const temp = await stat(tempDir);
    if ((temp.mode & 0o1002) === 0 && temp.uid === 0) await chmod(tempDir, 0o711);
    await chmod(blobs.root, 0o700);
    const instances = join(tempDir, 'instances');
    await mkdir(instances, { recursive: true });
    await chmod(instances, 0o711);
    const blocked = await firstUnsearchable(instances);
    if (blocked !== undefined) log.warn({ dir: blocked }, unreachableMessage(blocked));
  }

  /**
   * The instance's task user, created or looked up on first use in this agent run, with the
   * instance's dirs owned and moded for it. Throws TASK_USER_FAILED.
   */
  prepare(instance: Instance): Promise<SystemUser> {
    let pending = this.prepared.get(instance);
    if (pending === undefined) {
      pending = this.doPrepare(instance).catch((err: unknown) => {
        this.prepared.delete(instance);
        if (err instanceof MusterError) throw err;
        throw new MusterError(
          'TASK_USER_FAILED',
          `cannot prepare the task user of ${instance.key}: ${String(err)}`,
          undefined,
          { cause: err },
        );
      });
      this.prepared.set(instance, pending);
    }
    return pending;
  }

  hostUser(instance: Instance, user: SystemUser): HostUser {
    return {
      uid: user.uid,
      gid: user.gid,
      blobDir: instance.blobViewDir,
      env: {
        HOME: instance.homeDir,
        TMPDIR: instance.tmpDir,
        USER: user.name,
        LOGNAME: user.name,
      },
    };
  }

  /** Puts a task's inputs where its host looks for them. */
  linkInputs(instance: Instance, hashes: Iterable<string>): Promise<void> {
    return this.view.link(instance.blobViewDir, hashes);
  }

  /** Takes a finished task's outputs into the shared store, verified. Never rejects. */
  importOutputs(instance: Instance, result: TaskResult): Promise<TaskResult> {
    if (result.status !== 'succeeded' || (result.outputs?.length ?? 0) === 0)
      return Promise.resolve(result);
    return this.view.importOutputs(instance.blobViewDir, result);
  }

  /** Empties an instance's blob view; only call it while none of the instance's tasks runs. */
  async clearView(instance: Instance): Promise<number> {
    const user = instance.record.taskUser;
    if (user === null) return 0;
    return this.view.clear(instance.blobViewDir, (path) => removeTreeAs(user, path));
  }

  /** Removes a tree in the user's own dirs, as that user (`rm -rf`). */
  removeTree(instance: Instance, path: string): Promise<void> {
    const user = instance.record.taskUser;
    if (user === null) return rm(path, { recursive: true, force: true });
    return removeTreeAs(user, path);
  }

  /**
   * For an instance being removed (no tasks, no host): removes what its user owns, as that user,
   * then the user. Throws TASK_USER_FAILED when the user cannot be deleted (a process of it still
   * runs, say): its directory is kept for a later attempt.
   */
  async removeUser(instance: Instance): Promise<void> {
    this.prepared.delete(instance);
    const user = instance.record.taskUser;
    if (user === null) return;
    // The dirs themselves are entries of root's dir, which the user cannot change: their
    // contents go as the user, then the agent removes what is left.
    for (const dir of [join(instance.dir, 'work'), instance.homeDir, instance.tmpDir]) {
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        await removeTreeAs(user, join(dir, name));
      }
    }
    await this.clearView(instance);
    await this.accounts.remove(user.name);
    instance.record.taskUser = null;
  }

  /** SIGKILLs a process group, as the instance's user: only its own processes can be hit. */
  killGroup(instance: Instance, pgid: number): void {
    const user = instance.record.taskUser;
    if (user === null || !Number.isInteger(pgid) || pgid <= 1) return;
    spawn('/bin/kill', ['-s', 'KILL', '--', `-${pgid}`], {
      uid: user.uid,
      gid: user.gid,
      stdio: 'ignore',
    }).on('error', () => undefined);
  }

  private async doPrepare(instance: Instance): Promise<SystemUser> {
    const blocked = await firstUnsearchable(dirname(instance.dir));
    if (blocked !== undefined)
      throw new MusterError('TASK_USER_FAILED', unreachableMessage(blocked));
    if (this.agentId === undefined) throw new MusterError('INTERNAL', 'task users not initialised');
    const name = TaskUsers.nameOf(this.agentId, instance.record.dirName);
    const user = await this.accounts.ensure(
      name,
      `Muster tasks of instance ${instance.record.dirName}`,
    );
    if (user.uid === 0 || user.gid === 0) {
      throw new MusterError('TASK_USER_FAILED', `${name} has uid or gid 0; refusing to use it`);
    }
    const recorded = instance.record.taskUser;
    if (recorded === null || recorded.uid !== user.uid || recorded.gid !== user.gid) {
      if (recorded !== null) {
        // Removed and made again (by an admin): what the old uid owned must not linger.
        this.options.log.warn(
          { instance: instance.key, user: name, was: recorded.uid, now: user.uid },
          'task user changed: discarding its old work, home and tmp dirs',
        );
        await this.discardUserDirs(instance);
      }
      instance.record.taskUser = { name, uid: user.uid, gid: user.gid };
      await instance.save();
      this.options.log.info(
        { instance: instance.key, user: name, uid: user.uid },
        'task user recorded',
      );
    }
    await this.layout(instance, user);
    return user;
  }

  private async layout(instance: Instance, user: SystemUser): Promise<void> {
    const dirs: [path: string, uid: number, gid: number, mode: number][] = [
      [instance.dir, 0, user.gid, 0o750],
      [join(instance.dir, 'versions'), 0, user.gid, 0o750],
      [join(instance.dir, 'manifests'), 0, 0, 0o700],
      [join(instance.dir, 'output'), 0, 0, 0o700],
      [join(instance.dir, 'work'), user.uid, user.gid, 0o700],
      [instance.homeDir, user.uid, user.gid, 0o700],
      [instance.tmpDir, user.uid, user.gid, 0o700],
    ];
    for (const [path, uid, gid, mode] of dirs) {
      await mkdir(path, { recursive: true });
      // All of these are entries of root's own dirs: the task user cannot put a link there.
      if (!(await lstat(path)).isDirectory()) {
        throw new MusterError('TASK_USER_FAILED', `${path} is not a directory`);
      }
      await chown(path, uid, gid);
      await chmod(path, mode);
    }
    await this.view.prepare(instance.blobViewDir, user.gid);
  }

  /**
   * Moves the dirs a previous uid owned out of its reach (into a root-only dir), then removes
   * them.
   */
  private async discardUserDirs(instance: Instance): Promise<void> {
    const trash = join(instance.dir, `.stale-${randomBytes(6).toString('hex')}`);
    await mkdir(trash, { mode: 0o700 });
    for (const name of ['work', 'home', 'tmp', 'blobs']) {
      // eslint-disable-next-line no-restricted-syntax -- a dir never made (ENOENT) needs no move
      await rename(join(instance.dir, name), join(trash, name)).catch(() => undefined);
    }
    await rm(trash, { recursive: true, force: true });
  }
}

/**
 * `rm -rf` as the user; if that fails (a dir the task made read-only, as Go's module cache
 * does), `chmod -R u+rwx` as the user and once more.
 */
async function removeTreeAs(user: { uid: number; gid: number }, path: string): Promise<void> {
  if ((await runAs(user, '/bin/rm', ['-rf', '--', path])) === '') return;
  await runAs(user, '/bin/chmod', ['-R', 'u+rwx', '--', path]);
  const error = await runAs(user, '/bin/rm', ['-rf', '--', path]);
  if (error !== '') {
    throw new MusterError('STORAGE_ERROR', `rm -rf ${path} as uid ${user.uid}: ${error}`);
  }
}

/** Runs a program as the user; resolves with '' on success, else with what went wrong. */
function runAs(user: { uid: number; gid: number }, file: string, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn(file, args, {
      uid: user.uid,
      gid: user.gid,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-1000)));
    child.on('error', (err) => resolve(err.message));
    child.on('close', (code) => resolve(code === 0 ? '' : stderr.trim() || `exit ${code}`));
  });
}

function isInside(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel !== '' && !rel.startsWith('..') && !rel.startsWith(sep);
}

/** The first dir from `dir` up to / that others may not search (no o+x), if any. */
async function firstUnsearchable(dir: string): Promise<string | undefined> {
  for (let current = dir; ; current = dirname(current)) {
    const info = await stat(current);
    if ((info.mode & 0o001) === 0) return current;
    if (dirname(current) === current) return undefined;
  }
}

function unreachableMessage(dir: string): string {
  return `task users cannot reach the agent's temp dir: ${dir} is not searchable by others (o+x); give it mode 0711 (or 0755) or use a --temp-dir whose parents are`;
}
