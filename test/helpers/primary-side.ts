/**
 * A primary's side of HA (ha/primary-side.ts) for unit tests, on a store the test opens: the
 * options a test does not care about are fixed here (no join token, no certificates, deselection
 * an hour away, healthy within 5 s); the test says how the primary calls its backups (and may
 * give it a secrets key).
 */
import { join } from 'node:path';
import { pino } from 'pino';
import { PeerClient, type PeerResponse } from '../../src/coordinator/ha/peer-client.js';
import { PrimarySide, type PrimarySideOptions } from '../../src/coordinator/ha/primary-side.js';
import type { Store } from '../../src/coordinator/store/store.js';

export function primarySideFor(
  store: Store,
  dir: string,
  peerFor: PrimarySideOptions['peerFor'],
  instanceId = 'the-instance-id',
  secretsKey?: PrimarySideOptions['secretsKey'],
): PrimarySide {
  return new PrimarySide(
    store,
    pino({ level: 'silent' }),
    {
      deselectAfterMs: 3_600_000,
      joinToken: undefined,
      healthyWithinMs: 5000,
      tmpDir: join(dir, 'tmp'),
      certificates: () => [],
      peerFor,
      ...(secretsKey ? { secretsKey } : {}),
    },
    () => instanceId,
  );
}

/** A backup that answers every call with an empty body (select checks the primary reaches it). */
export class AnsweringPeer extends PeerClient {
  constructor(url: string) {
    super(
      url,
      () => 'secret',
      () => ({}),
    );
  }
  override json<T>(): Promise<PeerResponse<T>> {
    return Promise.resolve({ body: {} as T, headers: {}, fingerprint: undefined });
  }
}
