/**
 * Keeps one host process per (instance, version); starts them on demand (as the instance's task
 * user when there are task users), stops them all on shutdown.
 */
import type { Logger } from 'pino';
import { HostProcess } from './host-process.js';
import type { Instance } from './instances.js';
import type { TaskUsers } from './task-users.js';

export class HostSupervisor {
  private readonly hosts = new Map<string, HostProcess>();
  /** Hosts whose task user is being prepared, so two tasks at once start one host. */
  private readonly starting = new Map<string, Promise<HostProcess>>();

  constructor(
    private readonly blobDir: string,
    private readonly idleMs: number,
    private readonly log: Logger,
    private readonly users?: TaskUsers,
  ) {}

  /** The running host for this version, started if needed; resolves once it is ready. */
  async get(instance: Instance, versionId: string, entry: string): Promise<HostProcess> {
    const key = `${instance.key}\0${versionId}`;
    let host = this.hosts.get(key);
    if (host === undefined || host.state === 'exited' || host.state === 'stopping') {
      let pending = this.starting.get(key);
      if (pending === undefined) {
        pending = this.start(instance, versionId, entry, key).finally(() =>
          this.starting.delete(key),
        );
        this.starting.set(key, pending);
      }
      host = await pending;
    }
    await host.ready;
    return host;
  }

  isLive(instance: Instance, versionId: string): boolean {
    const key = `${instance.key}\0${versionId}`;
    return this.hosts.has(key) || this.starting.has(key);
  }

  get count(): number {
    return this.hosts.size;
  }

  /** Stops the instance's host processes (idle ones: the caller has checked it has no tasks). */
  async stopInstance(instance: Instance): Promise<void> {
    const prefix = `${instance.key}\0`;
    await Promise.allSettled(
      [...this.starting].filter(([key]) => key.startsWith(prefix)).map(([, p]) => p),
    );
    const mine = [...this.hosts].filter(([key]) => key.startsWith(prefix));
    for (const [key] of mine) this.hosts.delete(key);
    await Promise.all(mine.map(([, host]) => host.stop()));
  }

  async stopAll(): Promise<void> {
    await Promise.allSettled(this.starting.values());
    await Promise.all([...this.hosts.values()].map((h) => h.stop()));
    this.hosts.clear();
  }

  private async start(
    instance: Instance,
    versionId: string,
    entry: string,
    key: string,
  ): Promise<HostProcess> {
    const users = this.users;
    const user = users === undefined ? undefined : await users.prepare(instance);
    const host = new HostProcess({
      versionDir: instance.versionDir(versionId),
      entry,
      blobDir: this.blobDir,
      idleMs: this.idleMs,
      log: this.log.child({ instance: instance.key, version: versionId.slice(0, 12) }),
      onExit: (exited) => {
        if (this.hosts.get(key) === exited) this.hosts.delete(key);
      },
      ...(users === undefined || user === undefined
        ? {}
        : {
            user: users.hostUser(instance, user),
            finishing: (result) => users.importOutputs(instance, result),
            killGroup: (pgid) => users.killGroup(instance, pgid),
          }),
    });
    this.hosts.set(key, host);
    this.log.debug(
      { instance: instance.key, version: versionId.slice(0, 12), pid: host.pid, user: user?.name },
      'host started',
    );
    return host;
  }
}
