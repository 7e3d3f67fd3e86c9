/**
 * Who this coordinator is to agents: its product, instance id and key (settings, replicated to
 * the selected backup), cluster id and holder id (see holder-id.ts).
 */
import { createPublicKey } from 'node:crypto';
import { MUSTER_VERSION } from '../common/version.js';
import { instanceKeyFingerprint } from '../protocol/handshake.js';
import type { Identity } from './pool/agent-connection.js';
import type { Store } from './store/store.js';

export const PRODUCT = 'muster';
export const INSTANCE_ID_SETTING = 'Agent.InstanceId';
/**
 * The private key (Ed25519, PEM) that binds this coordinator's instance (and cluster) on every
 * agent. Replicated to the selected backup like the other settings; never shown by the API.
 */
export const INSTANCE_KEY_SETTING = 'Agent.InstanceKey';

/**
 * The cluster id of a coordinator without an instance id: from its instance key, which its
 * backup shares (replicated), so both still work under one lease.
 */
function keyClusterId(instanceKeyPem: string): string {
  try {
    const spki = createPublicKey(instanceKeyPem).export({ format: 'der', type: 'spki' });
    return `key-${instanceKeyFingerprint(spki.toString('base64')).slice('sha256:'.length)}`;
  } catch {
    return 'key-unknown'; // No key: its claims fail anyway (INSTANCE_CLAIM_INVALID).
  }
}

function stringSetting(store: Store, key: string): string {
  const value = store.getSetting(key);
  return typeof value === 'string' ? value : '';
}

/** What the API and the primary's heartbeat show: "" when the id is cleared. */
export function instanceIdSetting(store: Store): string {
  return stringSetting(store, INSTANCE_ID_SETTING);
}

/** The identity sent to agents, read from the settings at each connection. */
export function coordinatorIdentity(store: Store, holderId: string): Omit<Identity, 'leaseTerm'> {
  const instanceKey = stringSetting(store, INSTANCE_KEY_SETTING);
  // Cleared (""): agents key this coordinator by its address.
  const instanceId = instanceIdSetting(store) || undefined;
  return {
    product: PRODUCT,
    productVersion: MUSTER_VERSION,
    instanceId,
    clusterId: instanceId ?? keyClusterId(instanceKey),
    instanceKey,
    holderId,
  };
}
