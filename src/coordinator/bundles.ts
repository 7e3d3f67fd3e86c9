/**
 * What this coordinator ships to agents: its host runtime and the core extension (from this
 * package) plus the extensions users added (stored as blobs). The bundle is computed once and
 * again only when the extension set changes.
 */
import { checkManifest, versionIdOf, type Manifest } from '../protocol/manifest.js';
import type { BlobStore } from '../common/blob-store.js';
import { createBundle, type Bundle, type BundleBlob } from '../protocol/client/bundle.js';
import type { Store } from './store/store.js';

export class BundleManager {
  private base: Promise<Bundle> | undefined;
  private current: Promise<Bundle> | undefined;

  constructor(
    private readonly store: Store,
    private readonly blobs: BlobStore,
    private readonly options: { hostDir?: string | undefined; label: string },
  ) {}

  /** The bundle for agents now. */
  get(): Promise<Bundle> {
    if (this.current === undefined) {
      const computing = this.compute();
      this.current = computing;
      // A failure (a file vanished, a disk error) is not remembered: the next call tries again.
      computing.catch(() => {
        if (this.current === computing) this.current = undefined;
        this.base = undefined;
      });
    }
    return this.current;
  }

  /** The extension set changed: the next get() computes a new bundle. */
  invalidate(): void {
    this.current = undefined;
  }

  private async compute(): Promise<Bundle> {
    this.base ??= createBundle({
      ...(this.options.hostDir ? { hostDir: this.options.hostDir } : {}),
      label: this.options.label,
    });
    const base = await this.base;
    const files: Manifest['files'] = [...base.manifest.files];
    const blobs = new Map<string, BundleBlob>(base.blobs);
    for (const extension of this.store.listExtensions()) {
      if (extension.name === 'core') continue;
      for (const file of extension.files) {
        files.push({
          path: `extensions/${extension.name}/${file.path}`,
          sha256: file.sha256,
          size: file.size,
          mode: file.mode,
        });
        if (!blobs.has(file.sha256)) {
          blobs.set(file.sha256, {
            sha256: file.sha256,
            size: file.size,
            source: { file: this.blobs.pathOf(file.sha256) },
          });
        }
      }
    }
    const manifest = checkManifest({
      label: this.options.label,
      entry: base.manifest.entry,
      files,
    });
    return { manifest, versionId: versionIdOf(manifest), blobs };
  }
}
