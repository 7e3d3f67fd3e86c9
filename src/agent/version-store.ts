/**
 * Materialises an instance's versions: <instance>/versions/<versionId>/ holds exactly the files
 * of one manifest, read-only, built in a temporary directory and renamed into place, so a
 * version directory is complete or absent. Version ids are content addresses, so two
 * coordinators racing on one instance (even misconfigured to the same key) each get their own
 * directory; the same version synced twice at once is built once. `current` is a symlink
 * switched by rename.
 */
import { randomBytes } from 'node:crypto';
import {
  chmod,
  copyFile,
  link,
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  symlink,
} from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { manifestSchema, type Manifest } from '../protocol/manifest.js';
import { type BlobStore, storageError } from '../common/blob-store.js';
import { writeAtomic } from '../common/atomic-file.js';
import type { Instance } from './instances.js';

export class VersionStore {
  private readonly building = new Map<string, Promise<void>>();

  constructor(private readonly blobs: BlobStore) {}

  async isMaterialised(instance: Instance, versionId: string): Promise<boolean> {
    try {
      return (await stat(instance.versionDir(versionId))).isDirectory();
    } catch {
      return false;
    }
  }

  /** Builds the version directory unless it exists. All the manifest's blobs must be stored. */
  materialise(instance: Instance, versionId: string, manifest: Manifest): Promise<void> {
    const key = `${instance.dir}\0${versionId}`;
    let pending = this.building.get(key);
    if (pending === undefined) {
      pending = this.build(instance, versionId, manifest).finally(() => this.building.delete(key));
      this.building.set(key, pending);
    }
    return pending;
  }

  /** Points <instance>/current at the version, atomically. */
  async switchCurrent(instance: Instance, versionId: string): Promise<void> {
    const temp = join(instance.dir, `.current-${randomBytes(6).toString('hex')}`);
    await symlink(join('versions', versionId), temp);
    await rename(temp, join(instance.dir, 'current'));
  }

  async readManifest(instance: Instance, versionId: string): Promise<Manifest | undefined> {
    try {
      const text = await readFile(this.manifestFile(instance, versionId), 'utf8');
      return manifestSchema.parse(JSON.parse(text));
    } catch {
      return undefined;
    }
  }

  /** Removes a version's directory and manifest. */
  async remove(instance: Instance, versionId: string): Promise<void> {
    const dir = instance.versionDir(versionId);
    const doomed = join(
      instance.dir,
      'versions',
      `.removing-${versionId}-${randomBytes(4).toString('hex')}`,
    );
    // Rename first so the version disappears at once; then make it writable and delete it.
    // eslint-disable-next-line no-restricted-syntax -- no dir (a version never unpacked): nothing to remove but the manifest
    await rename(dir, doomed).catch(() => undefined);
    await makeWritable(doomed);
    await rm(doomed, { recursive: true, force: true });
    await rm(this.manifestFile(instance, versionId), { force: true });
  }

  /** Version ids materialised for the instance (complete directories only). */
  async list(instance: Instance): Promise<string[]> {
    const names = await readdir(join(instance.dir, 'versions')).catch(() => [] as string[]);
    return names.filter((n) => /^[0-9a-f]{64}$/.test(n));
  }

  /** Removes manifests whose version directory does not exist (a build that never finished). */
  async removeOrphanManifests(instance: Instance): Promise<void> {
    const present = new Set(await this.list(instance));
    const dir = join(instance.dir, 'manifests');
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const versionId = name.replace(/\.json$/, '');
      if (
        name.endsWith('.json') &&
        !present.has(versionId) &&
        !this.building.has(`${instance.dir}\0${versionId}`)
      ) {
        await rm(join(dir, name), { force: true });
      }
    }
  }

  /** Removes half-built directories and temporary links left by a crash. */
  async cleanPartial(instance: Instance): Promise<void> {
    for (const name of await readdir(instance.dir).catch(() => [] as string[])) {
      if (name.startsWith('.current-')) await rm(join(instance.dir, name), { force: true });
    }
    const versions = join(instance.dir, 'versions');
    for (const name of await readdir(versions).catch(() => [] as string[])) {
      if (name.startsWith('.')) {
        await makeWritable(join(versions, name));
        await rm(join(versions, name), { recursive: true, force: true });
      }
    }
  }

  private manifestFile(instance: Instance, versionId: string): string {
    return join(instance.dir, 'manifests', `${versionId}.json`);
  }

  private async build(instance: Instance, versionId: string, manifest: Manifest): Promise<void> {
    if (await this.isMaterialised(instance, versionId)) return;
    const final = instance.versionDir(versionId);
    const temp = join(
      instance.dir,
      'versions',
      `.building-${versionId.slice(0, 12)}-${randomBytes(6).toString('hex')}`,
    );
    try {
      await mkdir(join(instance.dir, 'manifests'), { recursive: true });
      // The manifest is written first: garbage collection reads manifests to know which blobs
      // are referenced, and must see this version before its directory appears.
      await writeAtomic(this.manifestFile(instance, versionId), JSON.stringify(manifest));
      // Every dir on the way, not only those with files: each gets 0555 below, whatever the
      // umask made of it (077 with task users, who must read the version).
      const dirs = new Set<string>();
      for (const file of manifest.files) {
        for (let dir = dirname(join(temp, file.path)); dir !== temp; dir = dirname(dir)) {
          dirs.add(dir);
        }
      }
      await mkdir(temp, { recursive: true });
      for (const dir of [...dirs].sort()) await mkdir(dir, { recursive: true });
      await Promise.all(
        manifest.files.map((file) => this.place(join(temp, file.path), file.sha256, file.mode)),
      );
      for (const dir of [...dirs].sort().reverse()) await chmod(dir, 0o555);
      await chmod(temp, 0o555);
      try {
        await rename(temp, final);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
        // Built by someone else in the meantime (another agent process would be a
        // misconfiguration, but its result is the same files): keep theirs.
        await makeWritable(temp);
        await rm(temp, { recursive: true, force: true });
      }
    } catch (err) {
      // Cleanup after a failure: the failure is the error to report, not the cleanup's.
      // eslint-disable-next-line no-restricted-syntax -- see above
      await makeWritable(temp).catch(() => undefined);
      // eslint-disable-next-line no-restricted-syntax -- see above
      await rm(temp, { recursive: true, force: true }).catch(() => undefined);
      throw storageError(err);
    }
  }

  /**
   * Files without an execute bit are hard links to the (read-only) blob: instant, no extra space.
   * Executables are copied, because a mode belongs to the inode that all links share.
   */
  private async place(target: string, sha256: string, mode: number): Promise<void> {
    const source = this.blobs.pathOf(sha256);
    if ((mode & 0o111) === 0) {
      try {
        await link(source, target);
        return;
      } catch {
        // Different file systems or no hard links: copy instead.
      }
    }
    await copyFile(source, target);
    await chmod(target, mode & 0o555);
  }
}

async function makeWritable(dir: string): Promise<void> {
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory()) return;
  // eslint-disable-next-line no-restricted-syntax -- what stays read-only makes the rm that follows fail, and that is reported
  await chmod(dir, 0o755).catch(() => undefined);
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const child = join(dir, name);
    const childInfo = await stat(child).catch(() => undefined);
    if (childInfo?.isDirectory()) await makeWritable(child);
  }
}
