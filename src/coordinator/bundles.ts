/**
 * What this coordinator ships to agents: its host runtime and the built-in extensions (core, cc:
 * from this package) plus the extensions users added and the compiler toolchains clients
 * registered (both stored as blobs). The bundle is computed once and again only when one of
 * those sets changes: whoever changes one calls invalidate() (get() also notices a changed set
 * by itself), then the pool's resyncAll() so connected agents get it.
 *
 * Toolchains (issue 13, design §3) go under `toolchains/<id>/…` with their description as
 * `toolchains/<id>.json`, beside `extensions/`, where the cc extension finds them from its own
 * place. What that costs, since a bundle is one content-addressed version:
 *
 * - every agent gets every registered toolchain (~50–100 MB each), whether or not it will
 *   compile with it; but only blobs it lacks travel (sync.need), so a toolchain's files cross
 *   the wire once per agent, and a second toolchain sends only its own new files;
 * - a new toolchain (or extension) is a new bundle version: each agent's instance materialises
 *   it as a new immutable directory. Files without an execute bit are hard links to the blob,
 *   but programs are copied (agent/version-store.ts: a mode belongs to the inode), so each new
 *   version costs a copy of every toolchain's programs on the agent's disk, kept for the
 *   agent's --version-retention. A task already running keeps its own version directory: its
 *   files never change under it; tasks started after the sync use the new version.
 */
import { checkManifest, versionIdOf, type Manifest } from '../protocol/manifest.js';
import type { BlobStore } from '../common/blob-store.js';
import { GLIBC_VERSION } from '../common/toolchain-id.js';
import {
  BUILT_IN_EXTENSIONS,
  createBundle,
  sha256Of,
  type Bundle,
  type BundleBlob,
} from '../protocol/client/bundle.js';
import { HOST_RUNTIME_FILES, type KeyedFile } from './scheduler/task-cache-key.js';
import type { Store } from './store/store.js';
import type { ToolchainRow } from './store/types.js';

/**
 * Toolchains shipped at most: every agent stores and copies what the bundle carries, and any user
 * who may run builds can register one. The bundle carries those in use — the most recently used
 * (by a compile job, or their registration) first, each that still fits the bytes — so the jobs
 * of a toolchain beyond run on the client until a job names it again, which brings it back.
 */
export const SHIPPED_TOOLCHAINS = { count: 32, bytes: 4 * 2 ** 30 };

export class BundleManager {
  private base: Promise<Bundle> | undefined;
  private current: Promise<Bundle> | undefined;
  private currentSets: string | undefined;
  /**
   * The last bundle computed, with its extensions' files as asked for (extensionFiles), by
   * `extensions/<name>/`, and its host runtime's (hostFiles).
   */
  private resolved:
    { promise: Promise<Bundle>; bundle: Bundle; extensions: Map<string, KeyedFile[]> } | undefined;

  constructor(
    private readonly store: Store,
    private readonly blobs: BlobStore,
    private readonly options: { hostDir?: string | undefined; label: string },
  ) {}

  /**
   * The bundle for agents now. The stored sets are looked at on every call (two small reads), so
   * rows that arrived without an invalidate() — a backup's, replicated from its primary — are in
   * the bundle it ships when it takes over.
   */
  get(): Promise<Bundle> {
    const sets = this.storedSets();
    if (sets !== this.currentSets) this.current = undefined;
    if (this.current === undefined) {
      const computing = this.compute();
      this.current = computing;
      this.currentSets = sets;
      // A failure (a file vanished, a disk error) is not remembered: the next call tries again.
      computing.then(
        (bundle) => {
          if (this.current === computing)
            this.resolved = { promise: computing, bundle, extensions: new Map() };
        },
        () => {
          if (this.current === computing) this.current = undefined;
          this.base = undefined;
        },
      );
    }
    return this.current;
  }

  /**
   * The files of one extension in the bundle agents get now (paths relative to its directory),
   * answered at once from the bundle last computed; undefined when there is no such extension,
   * or while the bundle is being computed (again): what a cached plan task's key is made of
   * (scheduler/task-cache.ts), which must not name code agents no longer run.
   */
  extensionFiles(name: string): readonly KeyedFile[] | undefined {
    const prefix = `extensions/${name}/`;
    const files = this.resolvedFiles(prefix, (path) =>
      path.startsWith(prefix) ? path.slice(prefix.length) : undefined,
    );
    return files === undefined || files.length === 0 ? undefined : files;
  }

  /**
   * The host runtime's files in the bundle agents get now (`package.json` and `host/…`, paths
   * relative to the bundle): what runs every operation (core/run's task, its work dir and
   * outputs), so a cached plan task's key covers it too; undefined as for extensionFiles.
   */
  hostFiles(): readonly KeyedFile[] | undefined {
    return this.resolvedFiles(HOST_RUNTIME_FILES, (path) =>
      path === 'package.json' || path.startsWith('host/') ? path : undefined,
    );
  }

  /** The files `pick` names (by a new path) in the bundle last computed, once per set. */
  private resolvedFiles(
    set: string,
    pick: (path: string) => string | undefined,
  ): readonly KeyedFile[] | undefined {
    const current = this.get();
    const resolved = this.resolved;
    if (resolved === undefined || resolved.promise !== current) return undefined;
    let files = resolved.extensions.get(set);
    if (files === undefined) {
      files = [];
      for (const f of resolved.bundle.manifest.files) {
        const path = pick(f.path);
        if (path !== undefined) files.push({ path, sha256: f.sha256, mode: f.mode });
      }
      resolved.extensions.set(set, files);
    }
    return files;
  }

  /** The extension or toolchain set changed: the next get() computes a new bundle. */
  invalidate(): void {
    this.current = undefined;
  }

  /**
   * Whether what the bundle is made of changed since the last one was computed (a toolchain
   * used again, one removed): then the next get() computes a new one, which connected agents
   * get only once someone calls the pool's resyncAll().
   */
  stale(): boolean {
    return this.current === undefined || this.storedSets() !== this.currentSets;
  }

  /** The ids of the toolchains the bundle carries now (or will, once computed). */
  shippedToolchains(): ReadonlySet<string> {
    return new Set(this.shippedIds());
  }

  /** What the bundle is made of besides this package: users' extensions, toolchains by id. */
  private storedSets(): string {
    return JSON.stringify([
      this.store.listExtensions().map((e) => [e.name, e.version, e.addedAt]),
      this.shippedIds(),
    ]);
  }

  /**
   * The toolchains to ship, sorted by id (a change of order among them is no new bundle): the
   * most recently used first while SHIPPED_TOOLCHAINS allows, skipping one too large for the
   * bytes left and those an agent could not tell it can run (no glibc, see shippedToolchain).
   * The toolchains one user registered take at most half the count and half the bytes: one
   * builder using a huge toolchain, or many, never pushes out those the others use.
   */
  private shippedIds(): string[] {
    const ids: string[] = [];
    let bytes = 0;
    const byUser = new Map<string, { count: number; bytes: number }>();
    for (const toolchain of this.store.cache.toolchainSummaries()) {
      if (ids.length >= SHIPPED_TOOLCHAINS.count) break;
      if (glibcOf(toolchain.info) === undefined) continue;
      if (bytes + toolchain.bytes > SHIPPED_TOOLCHAINS.bytes) continue;
      const mine = byUser.get(toolchain.createdBy) ?? { count: 0, bytes: 0 };
      if (mine.count + 1 > SHIPPED_TOOLCHAINS.count / 2) continue;
      if (mine.bytes + toolchain.bytes > SHIPPED_TOOLCHAINS.bytes / 2) continue;
      byUser.set(toolchain.createdBy, {
        count: mine.count + 1,
        bytes: mine.bytes + toolchain.bytes,
      });
      bytes += toolchain.bytes;
      ids.push(toolchain.id);
    }
    return ids.sort();
  }

  private async compute(): Promise<Bundle> {
    this.base ??= createBundle({
      ...(this.options.hostDir ? { hostDir: this.options.hostDir } : {}),
      label: this.options.label,
    });
    const base = await this.base;
    const files: Manifest['files'] = [...base.manifest.files];
    const blobs = new Map<string, BundleBlob>(base.blobs);
    const addStored = (path: string, file: Manifest['files'][number]): void => {
      files.push({ path, sha256: file.sha256, size: file.size, mode: file.mode });
      if (!blobs.has(file.sha256)) {
        blobs.set(file.sha256, {
          sha256: file.sha256,
          size: file.size,
          source: { file: this.blobs.pathOf(file.sha256) },
        });
      }
    };
    for (const extension of this.store.listExtensions()) {
      if (BUILT_IN_EXTENSIONS.includes(extension.name)) continue;
      for (const file of extension.files) {
        addStored(`extensions/${extension.name}/${file.path}`, file);
      }
    }
    for (const id of this.shippedIds()) {
      const toolchain = this.store.cache.getToolchain(id);
      const shipped = toolchain && shippedToolchain(toolchain);
      if (shipped === undefined) continue;
      for (const file of shipped.files) addStored(file.path, file);
      files.push(shipped.description);
      blobs.set(shipped.description.sha256, {
        sha256: shipped.description.sha256,
        size: shipped.description.size,
        source: { data: shipped.data },
      });
    }
    const manifest = checkManifest({
      label: this.options.label,
      entry: base.manifest.entry,
      files,
    });
    return { manifest, versionId: versionIdOf(manifest), blobs };
  }
}

/** What the cc extension reads of a toolchain (src/extensions/cc/toolchains.ts). */
export interface ToolchainDescription {
  id: string;
  /** The newest glibc its programs need: agents with an older one refuse it. */
  glibc: string;
  /** The only program of it the cc extension runs (a job naming another is refused). */
  driver?: string;
  triple?: string;
  version?: string;
}

/**
 * A toolchain as the bundle carries it: its files under `toolchains/<id>/` and its description
 * at `toolchains/<id>.json`; undefined when it cannot be shipped, so that one bad registration
 * (any user may register one) never breaks the bundle of every agent:
 *
 * - no glibc requirement in what its client said (`info`): an agent could not tell whether it
 *   can run it;
 * - file paths the manifest would refuse under the prefix (too long, a file that is also a
 *   directory of another).
 *
 * Such a toolchain is never on an agent, so its jobs run on the client.
 */
export function shippedToolchain(
  row: Pick<ToolchainRow, 'id' | 'files' | 'info'> & Partial<ToolchainRow>,
): { files: Manifest['files']; description: Manifest['files'][number]; data: Buffer } | undefined {
  const { driver, triple, version } = row.info;
  const glibc = glibcOf(row.info);
  if (glibc === undefined) return undefined;
  const description: ToolchainDescription = { id: row.id, glibc };
  for (const [key, value] of [
    ['driver', driver],
    ['triple', triple],
    ['version', version],
  ] as const) {
    // The driver as long as registration takes it: the cc extension runs no other program.
    const most = key === 'driver' ? 4096 : 256;
    if (typeof value === 'string' && value.length <= most) description[key] = value;
  }
  const data = Buffer.from(`${JSON.stringify(description)}\n`);
  const files = row.files.map((f) => ({ ...f, path: `toolchains/${row.id}/${f.path}` }));
  const described = {
    path: `toolchains/${row.id}.json`,
    sha256: sha256Of(data),
    size: data.length,
    mode: 0o644,
  };
  try {
    checkManifest({ entry: described.path, files: [...files, described] });
  } catch {
    return undefined;
  }
  return { files, description: described, data };
}

/** The glibc a toolchain needs, as its client described it; undefined when it did not say. */
function glibcOf(info: Record<string, unknown>): string | undefined {
  const { glibc } = info;
  return typeof glibc === 'string' && GLIBC_VERSION.test(glibc) ? glibc : undefined;
}
