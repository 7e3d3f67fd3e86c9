/**
 * What a coordinator has whatever its role, made once at start from its options and its store:
 * blobs and the quota on uploads, the event bus, the bundle it pushes to agents, its identity to
 * agents, and what it serves over TLS. A role (roles/) adds its engine and its side of high
 * availability.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import { BlobStore } from '../common/blob-store.js';
import { MUSTER_VERSION } from '../common/version.js';
import { BlobSweeper } from './blob-sweeper.js';
import { BundleManager } from './bundles.js';
import { Engine, type EngineContext } from './engine.js';
import { EventBus } from './events.js';
import { loadOrCreateHolderId } from './holder-id.js';
import { PRODUCT, coordinatorIdentity } from './identity.js';
import type { CompiledCoordinatorOptions } from './options.js';
import { SecretKey } from './secrets/secret-key.js';
import { Secrets } from './secrets/secrets.js';
import type { Store } from './store/store.js';
import { loadServedTls, type ServedTls } from './tls/served-tls.js';

export interface Services {
  options: CompiledCoordinatorOptions;
  log: Logger;
  store: Store;
  blobs: BlobStore;
  /** The quota on unreferenced uploads, and what keeps blobs a request uses from being swept. */
  uploads: BlobSweeper;
  events: EventBus;
  bundles: BundleManager;
  tls: ServedTls;
  /** Which coordinator of its cluster this one is (holder-id.ts). */
  holderId: string;
  /** The key secrets are sealed with (a backup's: its primary's, once received). */
  secretKey: SecretKey;
  secrets: Secrets;
}

export async function createServices(
  options: CompiledCoordinatorOptions,
  log: Logger,
  store: Store,
): Promise<Services> {
  const blobs = new BlobStore(join(options.dataDir, 'blobs'));
  await blobs.init();
  const uploads = new BlobSweeper(
    store,
    blobs,
    {
      quotaBytes: options.uploadQuotaBytes,
      perUserQuotaBytes: options.uploadQuotaPerUserBytes,
      retentionMs: options.blobRetentionMs,
    },
    log,
  );
  const bundles = new BundleManager(store, blobs, {
    hostDir: options.hostDir,
    label: `${PRODUCT} ${MUSTER_VERSION}`,
  });
  const holderId = await loadOrCreateHolderId(options.dataDir);
  const tls = await loadServedTls(options, log);
  // A primary makes its key at its first start; a backup adopts its primary's (replicator.ts).
  const secretKey = await SecretKey.open(options.dataDir, options.backupOf === undefined);
  const secrets = new Secrets(store, secretKey);
  if (options.backupOf === undefined) {
    // A data dir restored without its key file: a new key was made, and these cannot be read.
    const unreadable = secrets.list().filter((s) => s.keyId !== secretKey.id);
    if (unreadable.length > 0)
      log.warn(
        { secrets: unreadable.map((s) => s.name), keyId: secretKey.id },
        'secrets encrypted with another key than secrets.key cannot be read: restore that key file, or set them again',
      );
  }
  return {
    options,
    log,
    store,
    blobs,
    uploads,
    events: new EventBus(),
    bundles,
    tls,
    holderId,
    secretKey,
    secrets,
  };
}

/**
 * The engine (pool and scheduler) of a role, which decides when a connection may outbid an
 * expired lease and when a finished task is released on its agent.
 */
export function createEngine(
  services: Services,
  policy: Pick<EngineContext, 'mayOutbid' | 'deferRelease'>,
): Engine {
  const { store, blobs, events, log, bundles, options, holderId, secrets } = services;
  return new Engine({
    store,
    secrets,
    blobs,
    events,
    log,
    identity: () => coordinatorIdentity(store, holderId),
    bundle: () => bundles.get(),
    bundleFiles: {
      extensionFiles: (name) => bundles.extensionFiles(name),
      hostFiles: () => bundles.hostFiles(),
    },
    heartbeatIntervalMs: options.heartbeatIntervalMs,
    agentLossGraceMs: options.agentLossGraceMs,
    onTermHeld: (term) => {
      if (term > store.ha.term()) store.ha.setTerm(term);
    },
    ...policy,
  });
}
