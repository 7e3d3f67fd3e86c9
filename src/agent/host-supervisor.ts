/** Keeps one host process per (instance, version); starts them on demand, stops them all on shutdown. */
import type { Logger } from 'pino';
import { HostProcess } from './host-process.js';
import type { Instance } from './instances.js';

export class HostSupervisor {
  private readonly hosts = new Map<string, HostProcess>();

  constructor(
    private readonly blobDir: string,
    private readonly idleMs: number,
    private readonly log: Logger,
  ) {}

  /** The running host for this version, started if needed; resolves once it is ready. */
  async get(instance: Instance, versionId: string, entry: string): Promise<HostProcess> {
    const key = `${instance.key}\0${versionId}`;
    let host = this.hosts.get(key);
    if (host === undefined || host.state === 'exited' || host.state === 'stopping') {
      host = new HostProcess({
        versionDir: instance.versionDir(versionId),
        entry,
        blobDir: this.blobDir,
        idleMs: this.idleMs,
        log: this.log.child({ instance: instance.key, version: versionId.slice(0, 12) }),
        onExit: (exited) => {
          if (this.hosts.get(key) === exited) this.hosts.delete(key);
        },
      });
      this.hosts.set(key, host);
      this.log.debug(
        { instance: instance.key, version: versionId.slice(0, 12), pid: host.pid },
        'host started',
      );
    }
    await host.ready;
    return host;
  }

  isLive(instance: Instance, versionId: string): boolean {
    return this.hosts.has(`${instance.key}\0${versionId}`);
  }

  get count(): number {
    return this.hosts.size;
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.hosts.values()].map((h) => h.stop()));
    this.hosts.clear();
  }
}
