/**
 * A connection's bundle sync (`sync.offer`): the version of its coordinator's host runtime and
 * extensions it runs tasks with. The agent answers with the blobs it lacks, receives them,
 * materialises the version in the instance's own directory, makes it current, and keeps it
 * pinned against collection while this connection uses it.
 */
import type { BlobStore } from '../common/blob-store.js';
import type { FramedConnection } from '../protocol/connection.js';
import { checkManifest, versionIdOf } from '../protocol/manifest.js';
import type { AgentWireMessage, ClientMessage } from '../protocol/messages.js';
import { versionPinKey } from './garbage-collector.js';
import type { Instance } from './instances.js';
import type { Pins } from './pins.js';
import type { SyncedVersion } from './tasks.js';
import type { UploadReceiver } from './upload-receiver.js';
import type { VersionStore } from './version-store.js';

export interface BundleSyncContext {
  blobs: BlobStore;
  versions: VersionStore;
  /** Blobs being received or used: not collected meanwhile. */
  pins: Pins;
  /** Versions a connection synced: not collected meanwhile. */
  versionPins: Pins;
}

export class BundleSync {
  private version: SyncedVersion | undefined;
  private unpinVersion: () => void = () => undefined;

  constructor(
    private readonly ctx: BundleSyncContext,
    private readonly conn: FramedConnection<AgentWireMessage>,
    private readonly uploads: UploadReceiver,
  ) {}

  /** The version this connection synced last; tasks it starts run with it. */
  get synced(): SyncedVersion | undefined {
    return this.version;
  }

  async offer(
    instance: Instance,
    message: Extract<ClientMessage, { t: 'sync.offer' }>,
  ): Promise<void> {
    const manifest = checkManifest(message.manifest);
    const versionId = versionIdOf(manifest);
    const finish = async (receivedBlobs: number, receivedBytes: number): Promise<void> => {
      await this.ctx.versions.materialise(instance, versionId, manifest);
      if (instance.record.current !== versionId)
        await this.ctx.versions.switchCurrent(instance, versionId);
      if (instance.noteVersion(versionId, manifest.label)) await instance.save();
      this.unpinVersion();
      this.unpinVersion = this.ctx.versionPins.pin([versionPinKey(instance, versionId)]);
      this.version = { versionId, entry: manifest.entry };
      this.conn.sendJson({
        t: 'sync.done',
        re: message.id,
        versionId,
        receivedBlobs,
        receivedBytes,
      });
    };
    if (await this.ctx.versions.isMaterialised(instance, versionId)) {
      await finish(0, 0);
      return;
    }
    const unpin = this.ctx.pins.pin(manifest.files.map((f) => f.sha256));
    try {
      const sizes = new Map(manifest.files.map((f) => [f.sha256, f.size]));
      const missing = await this.ctx.blobs.missing(sizes.keys());
      if (missing.length === 0) {
        await finish(0, 0);
        unpin();
        return;
      }
      this.conn.sendJson({ t: 'sync.need', re: message.id, versionId, missing });
      this.uploads.begin(message.id, missing, sizes, unpin, (received) =>
        finish(received.blobs, received.bytes),
      );
    } catch (err) {
      unpin();
      throw err;
    }
  }

  /** The connection closed: the version it synced may be collected again. */
  release(): void {
    this.unpinVersion();
  }
}
