/**
 * Removing an instance the agent no longer needs: by an agent admin (`muster agent instances
 * --remove KEY`), or once it has been idle longer than `--instance-idle-ttl`. Only an instance
 * with no connection and no task goes; whether another instance bound to the same key is in use
 * does not matter (a primary and its backup without an instance id have one instance each, at
 * their own addresses, and either may be the one in use).
 */
import type { Logger } from 'pino';
import type { HostSupervisor } from './host-supervisor.js';
import type { Instance, InstanceRegistry } from './instances.js';
import type { TaskUsers } from './task-users.js';

export interface InstanceRemovalContext {
  instances: InstanceRegistry;
  hosts: HostSupervisor;
  users: TaskUsers | undefined;
  log: Logger;
}

/** Why an instance cannot be removed now, or undefined when it can. */
export function inUse(instance: Instance): string | undefined {
  if (instance.removal !== undefined) return 'it is being removed';
  if (instance.connections > 0) {
    const from = instance.record.lastAddress ?? 'its coordinator';
    return `it has ${instance.connections === 1 ? 'a live connection' : `${instance.connections} live connections`} (from ${from}): stop or reconfigure that coordinator first`;
  }
  const running = [...instance.tasks.values()].filter((t) => t.state === 'running').length;
  if (running > 0) return `${running} of its tasks ${running === 1 ? 'is' : 'are'} running`;
  if (instance.tasks.size > 0) {
    return `${instance.tasks.size} ended task${instance.tasks.size === 1 ? '' : 's'} still wait${instance.tasks.size === 1 ? 's' : ''} for its coordinator to collect the result (kept for --task-grace)`;
  }
  return undefined;
}

/**
 * Removes an instance not in use (the caller checked inUse() just before, with no await in
 * between): its host processes, task user, directory and record. A connection for it meanwhile
 * waits (InstanceRegistry.open) and then gets a new instance.
 */
export function removeInstance(
  ctx: InstanceRemovalContext,
  instance: Instance,
  reason: string,
): Promise<void> {
  if (instance.removal !== undefined) return instance.removal;
  instance.removal = doRemove(ctx, instance, reason).finally(() => {
    instance.removal = undefined;
  });
  return instance.removal;
}

async function doRemove(
  ctx: InstanceRemovalContext,
  instance: Instance,
  reason: string,
): Promise<void> {
  await ctx.hosts.stopInstance(instance);
  const user = instance.record.taskUser?.name;
  await ctx.users?.removeUser(instance);
  await ctx.instances.remove(instance);
  ctx.log.warn(
    {
      instance: instance.key,
      dir: instance.record.dirName,
      lastSeen: instance.record.lastSeen,
      ...(user === undefined ? {} : { taskUser: user }),
      reason,
    },
    'instance removed',
  );
}

/** Instances with no connection and no task whose last activity is older than `ttlMs`. */
export function idleInstances(instances: Instance[], ttlMs: number, now = Date.now()): Instance[] {
  return instances.filter((instance) => {
    if (inUse(instance) !== undefined) return false;
    const seen = Date.parse(instance.record.lastSeen);
    const last = Math.max(Number.isNaN(seen) ? 0 : seen, instance.lastActive);
    return now - last > ttlMs;
  });
}
