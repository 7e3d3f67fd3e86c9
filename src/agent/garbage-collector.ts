/**
 * Collects what no one uses any more. A version is kept while it is an instance's current one,
 * has a live host, or was synced within the retention period; a blob is kept while a kept
 * version, a live task or an upload in progress refers to it, or it is younger than an hour.
 * With task users, an instance's blob view (blob-view.ts) is emptied while none of its tasks runs.
 */
import type { Logger } from 'pino';
import type { Pins } from './pins.js';
import type { BlobStore } from '../common/blob-store.js';
import type { HostSupervisor } from './host-supervisor.js';
import type { Instance } from './instances.js';
import type { TaskService } from './tasks.js';
import type { TaskUsers } from './task-users.js';
import type { VersionStore } from './version-store.js';

export interface GarbageCollectorContext {
  instances: Instance[];
  versions: VersionStore;
  blobs: BlobStore;
  hosts: HostSupervisor;
  pins: Pins;
  /** Versions open connections have synced, as versionPinKey(instance, versionId). */
  versionPins: Pins;
  tasks: TaskService;
  versionRetentionMs: number;
  log: Logger;
  /** Blobs younger than this are kept even when unreferenced (an upload may be about to use them). */
  blobMinAgeMs: number;
  users?: TaskUsers;
}

export function versionPinKey(instance: Instance, versionId: string): string {
  return `${instance.key}\0${versionId}`;
}

export async function collectGarbage(
  ctx: GarbageCollectorContext,
): Promise<{ versions: number; blobs: number }> {
  const now = Date.now();
  const keep = new Set<string>([...ctx.pins.all(), ...ctx.tasks.referencedBlobs()]);
  let removedVersions = 0;
  for (const instance of ctx.instances) {
    const syncedAt = new Map(
      instance.record.versions.map((v) => [v.versionId, Date.parse(v.syncedAt)]),
    );
    let changed = false;
    for (const versionId of await ctx.versions.list(instance)) {
      const recent = now - (syncedAt.get(versionId) ?? 0) < ctx.versionRetentionMs;
      const used =
        instance.record.current === versionId ||
        ctx.hosts.isLive(instance, versionId) ||
        ctx.versionPins.has(versionPinKey(instance, versionId)) ||
        recent;
      if (used) {
        const manifest = await ctx.versions.readManifest(instance, versionId);
        for (const file of manifest?.files ?? []) keep.add(file.sha256);
        continue;
      }
      await ctx.versions.remove(instance, versionId);
      instance.forgetVersion(versionId);
      changed = true;
      removedVersions++;
    }
    await ctx.versions.removeOrphanManifests(instance);
    if (changed) await instance.save();
    if (ctx.users && ![...instance.tasks.values()].some((t) => t.state === 'running')) {
      await ctx.users.clearView(instance);
    }
  }
  const removedBlobs = await ctx.blobs.collect(keep, ctx.blobMinAgeMs);
  if (removedVersions + removedBlobs > 0) {
    ctx.log.info({ versions: removedVersions, blobs: removedBlobs }, 'collected unused files');
  }
  return { versions: removedVersions, blobs: removedBlobs };
}
