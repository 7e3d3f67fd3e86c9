/**
 * A primary's half of high availability: backups register (no secret needed unless a join
 * token is set; selecting one is the act of trust), an admin selects one or none, and only the
 * selected backup may read the state: a snapshot, then the ordered change stream. Its
 * acknowledgements prune the stream. A selected backup not heard from for `deselectAfterMs`
 * (counted only while this primary runs) is deselected.
 */
import { randomUUID } from 'node:crypto';
import { sameSecret } from '../auth/passwords.js';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { MusterError } from '../../protocol/errors.js';
import type { BackupView, DeselectionView } from '../../api/views/backups.js';
import type { HeartbeatView } from '../../api/views/ha.js';
import { sameFingerprint } from '../../protocol/fingerprint.js';
import type { AnnouncedCertificate, BackupConfirmation } from '../tls/certificate-manager.js';
import type { BackupRow } from '../store/backups.js';
import type { ChangePage } from '../store/replication.js';
import type { Store } from '../store/store.js';
import { BackupHealthBook, explainCallFailure, unverifiedBackup } from './backup-health.js';
import type { PeerClient } from './peer-client.js';
import { Sleeper } from './sleeper.js';
import { SupervisedLoop } from '../supervised-loop.js';

/** At most this many registered backups; more are refused until an admin removes some. */
export const MAX_REGISTERED_BACKUPS = 16;
/** New registrations (not re-registrations) per minute, from all addresses together. */
const NEW_REGISTRATIONS_PER_MINUTE = 10;

export interface PrimarySideOptions {
  deselectAfterMs: number;
  /** When set, registration needs it. */
  joinToken: string | undefined;
  /** A backup in touch within this long counts as healthy. */
  healthyWithinMs: number;
  tmpDir: string;
  /** The certificates this primary presents or is about to present (empty over plain HTTP). */
  certificates: () => AnnouncedCertificate[];
  /** A client for calling a backup at its URL (its certificate verified, pinned). */
  peerFor: (backup: BackupRow) => PeerClient;
  /**
   * The key secrets are sealed with (secrets/secret-key.ts), for the selected backup: its copy of
   * the secrets is ciphertext, and it needs the key to run their tasks after a takeover.
   */
  secretsKey?: () => Buffer;
}

export interface RegisterInput {
  name: string;
  url: string;
  fingerprint: string | null;
  certificate: string | null;
  secret: string;
  joinToken?: string | undefined;
}

/** The answer to a backup's heartbeat (the view lives with the API's: src/api/views/ha.ts). */
export type { HeartbeatView };

/** How long `select` waits for the backup to answer its check. */
const SELECT_PROBE_MS = 5000;

/** Releases wait for the backup's acknowledgement at most this long (then go anyway). */
const RELEASE_WAIT_MS = 5 * 60_000;
const RELEASE_QUEUE_MAX = 100_000;

interface PendingRelease {
  seq: number;
  at: number;
  release: () => void;
}

export class PrimarySide {
  private readonly startedAt = Date.now();
  private readonly sleeper = new Sleeper();
  private ticks: SupervisedLoop | undefined;
  private readonly releases: PendingRelease[] = [];
  private stopped = false;
  /** The fingerprints each backup last said it accepts for this primary (heartbeat `pins`). */
  private readonly pins = new Map<string, string[]>();
  /** When the last new registrations came (for the per-minute cap). */
  private readonly registrations: number[] = [];
  /** This primary's calls to its backups and what they report (health both ways). */
  readonly health = new BackupHealthBook();

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly options: PrimarySideOptions,
    private readonly instanceId: () => string,
  ) {}

  start(): void {
    const every = Math.max(250, Math.min(this.options.deselectAfterMs / 4, 10_000));
    this.ticks = new SupervisedLoop('backup deselection check', () => this.tickLoop(every), {
      log: this.log,
    }).start();
    // Recording follows the selection (a database from before this feature has neither).
    const selected = this.selected();
    if (selected && this.store.replication.outStream() === null)
      this.store.replication.setRecording(true);
    if (!selected && this.store.replication.outStream() !== null)
      this.store.replication.setRecording(false);
  }

  stop(): void {
    this.stopped = true;
    this.sleeper.stop();
    // The loop ends as its sleep is cut short; its supervisor never rejects.
    void this.ticks?.stop();
  }

  private async tickLoop(everyMs: number): Promise<void> {
    while (!this.sleeper.stopped) {
      await this.sleeper.sleep(everyMs);
      if (this.sleeper.stopped) return;
      this.checkDeselection();
      this.drainReleases(undefined);
    }
  }

  /**
   * Holds a finished task's release on its agent until the selected backup has acknowledged
   * the change that recorded its result (the result is committed by the time setImmediate runs).
   */
  deferRelease(release: () => void): void {
    if (this.store.replication.outStream() === null) {
      release();
      return;
    }
    setImmediate(() => {
      this.releases.push({ seq: this.store.replication.lastSeq(), at: Date.now(), release });
      if (this.releases.length > RELEASE_QUEUE_MAX) this.releases.shift()?.release();
    });
  }

  /** Releases what the backup has (up to `acked`), what waited too long, or all without a backup. */
  private drainReleases(acked: number | undefined): void {
    const all = this.store.replication.outStream() === null;
    const expired = Date.now() - RELEASE_WAIT_MS;
    let keep = 0;
    for (const pending of this.releases) {
      if (all || pending.at < expired || (acked !== undefined && pending.seq <= acked))
        pending.release();
      else this.releases[keep++] = pending;
    }
    this.releases.length = keep;
  }

  /**
   * Registers (or re-registers) a backup. Answers only whether it is selected: ids and state go
   * to the selected backup alone, authenticated by its secret.
   */
  register(input: RegisterInput): { selected: boolean } {
    const { joinToken } = this.options;
    if (joinToken !== undefined && !sameSecret(input.joinToken ?? '', joinToken))
      throw new MusterError(
        'UNAUTHORIZED',
        'this primary needs the right --join-token to register',
      );
    const existing = this.store.backups.get(input.name);
    if (existing && !sameSecret(existing.secret, input.secret)) {
      throw new MusterError(
        'CONFLICT',
        `a backup named ${input.name} is registered with another secret: remove it first (muster backup remove) or pick another name`,
      );
    }
    if (!existing) this.admitNewRegistration();
    this.store.backups.put(
      {
        name: input.name,
        url: input.url,
        fingerprint: input.fingerprint,
        certificate: input.certificate,
        secret: input.secret,
      },
      new Date().toISOString(),
    );
    if (!existing) this.log.info({ backup: input.name, url: input.url }, 'backup registered');
    else if (existing.url !== input.url || existing.fingerprint !== input.fingerprint) {
      this.log.warn(
        {
          backup: input.name,
          url: input.url,
          was: existing.url,
          fingerprint: input.fingerprint,
          previousFingerprint: existing.fingerprint,
        },
        'a registered backup came back with another address or certificate',
      );
    }
    return { selected: this.selected()?.name === input.name };
  }

  /** Caps registrations: anyone may register, so neither the table nor its churn may grow freely. */
  private admitNewRegistration(): void {
    if (this.store.backups.list().length >= MAX_REGISTERED_BACKUPS)
      throw new MusterError(
        'RATE_LIMITED',
        `this primary already has ${MAX_REGISTERED_BACKUPS} registered backups: an admin must remove some (muster backup remove NAME) before another can register`,
      );
    const now = Date.now();
    while (this.registrations.length > 0 && this.registrations[0]! <= now - 60_000)
      this.registrations.shift();
    if (this.registrations.length >= NEW_REGISTRATIONS_PER_MINUTE)
      throw new MusterError(
        'RATE_LIMITED',
        'too many new backup registrations; try again in a minute',
      );
    this.registrations.push(now);
  }

  /** The backup a request comes from, by its name and secret. */
  authenticate(name: string | undefined, secret: string | undefined): BackupRow {
    const row = name === undefined ? undefined : this.store.backups.get(name);
    if (!row || secret === undefined || !sameSecret(row.secret, secret))
      throw new MusterError('UNAUTHORIZED', 'not a registered backup (name or secret wrong)');
    return row;
  }

  /**
   * A backup's heartbeat: `pins` are the certificates it accepts for this primary,
   * `replicationError` the error its replication keeps failing with (absent when it works).
   */
  heartbeat(backup: BackupRow, pins?: string[], replicationError?: string): HeartbeatView {
    const now = Date.now();
    this.store.backups.touch(backup.name, new Date(now).toISOString());
    if (pins !== undefined) this.pins.set(backup.name, pins);
    const selected = this.selected()?.name === backup.name;
    if (!selected) {
      // An unselected registration learns nothing of this primary's state.
      this.health.noteReport(backup.name, undefined, now);
      return { role: 'primary', selected, certificates: this.options.certificates() };
    }
    const before = this.health.replicationError(backup.name);
    this.health.noteReport(backup.name, replicationError, now);
    const after = this.health.replicationError(backup.name);
    if (after !== null && before === null)
      this.log.warn(
        { backup: backup.name },
        `the selected backup's replication is failing: ${after}`,
      );
    else if (after === null && before !== null)
      this.log.info({ backup: backup.name }, "the selected backup's replication works again");
    const view = this.list().find((b) => b.name === backup.name);
    return {
      role: 'primary',
      selected,
      instanceId: this.instanceId(),
      term: this.term(),
      stream: this.store.replication.outStream(),
      lastSeq: this.store.replication.lastSeq(),
      certificates: this.options.certificates(),
      ...(view
        ? {
            health: {
              health: view.health,
              healthReason: view.healthReason,
              lagSeconds: view.lagSeconds,
            },
          }
        : {}),
    };
  }

  /**
   * Before this primary presents a new certificate: waits up to `timeoutMs` for the selected
   * backup to say (in a heartbeat) that it accepts `fingerprint`. Null when none is selected.
   */
  async awaitPin(fingerprint: string, timeoutMs: number): Promise<BackupConfirmation | null> {
    const backup = this.selected();
    if (!backup) return null;
    const accepts = () =>
      (this.pins.get(backup.name) ?? []).some((pin) => sameFingerprint(pin, fingerprint));
    const healthy = () => {
      const contact = this.store.backups.get(backup.name)?.lastContact;
      return (
        contact !== null &&
        contact !== undefined &&
        Date.now() - Date.parse(contact) <= this.options.healthyWithinMs
      );
    };
    const deadline = Date.now() + timeoutMs;
    while (!accepts() && healthy() && Date.now() < deadline && !this.stopped)
      await new Promise((resolve) => setTimeout(resolve, 100));
    if (accepts())
      return {
        name: backup.name,
        confirmed: true,
        message: `the selected backup ${backup.name} accepted the new certificate before the swap`,
      };
    const why = healthy()
      ? `did not confirm within ${Math.round(timeoutMs / 1000)} s`
      : 'is not in touch with this primary';
    return {
      name: backup.name,
      confirmed: false,
      message: `the selected backup ${backup.name} ${why}, so it may refuse this primary's new certificate (TLS_FINGERPRINT_MISMATCH) and stop replicating: check its log and, if it does, re-pin it (docs/high-availability.md, Certificates)`,
    };
  }

  /** Changes after `after` (long-polls up to waitMs for the first); acknowledges `after`. */
  async changes(
    backup: BackupRow,
    stream: string,
    after: number,
    waitMs: number,
    closed: () => boolean,
  ): Promise<ChangePage & { primaryLastSeq: number }> {
    this.requireSelected(backup);
    const replication = this.store.replication;
    const at = new Date().toISOString();
    if (stream === replication.outStream() && after <= replication.lastSeq()) {
      this.store.backups.ack(backup.name, after, at);
      replication.prune(after);
      this.drainReleases(after);
    }
    const deadline = Date.now() + Math.min(Math.max(waitMs, 0), 30_000);
    while (replication.lastSeq() <= after && Date.now() < deadline && !closed() && !this.stopped) {
      if (replication.outStream() !== stream) break;
      // No write while waiting: the backup's heartbeats keep its last contact current.
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    this.requireSelected(backup);
    const page = replication.readChanges(stream, after);
    return { ...page, primaryLastSeq: replication.lastSeq() };
  }

  /**
   * The secrets key, to the selected backup only, over the link it authenticated with its secret
   * (and, over TLS, this primary's pinned certificate). Never part of a snapshot or a change.
   */
  secretsKey(backup: BackupRow): { key: string } {
    this.requireSelected(backup);
    const key = this.options.secretsKey?.();
    if (key === undefined)
      throw new MusterError('SECRET_UNREADABLE', 'this primary has no secrets key');
    this.log.info({ backup: backup.name }, 'secrets key sent to the backup');
    return { key: key.toString('base64') };
  }

  /** A snapshot file (the caller streams it, then calls the cleanup). */
  async snapshot(
    backup: BackupRow,
  ): Promise<{ file: string; stream: string; seq: number; cleanup: () => Promise<void> }> {
    this.requireSelected(backup);
    await mkdir(this.options.tmpDir, { recursive: true, mode: 0o700 });
    const file = join(this.options.tmpDir, `snapshot-${randomUUID()}.db`);
    const { stream, seq } = this.store.replication.writeSnapshot(file);
    this.store.backups.touch(backup.name, new Date().toISOString());
    this.log.info({ backup: backup.name, seq }, 'snapshot sent to the backup');
    return { file, stream, seq, cleanup: () => rm(file, { force: true }) };
  }

  selected(): BackupRow | undefined {
    const name = this.store.ha.selectedBackup();
    return name === undefined ? undefined : this.store.backups.get(name);
  }

  list(): BackupView[] {
    const selected = this.selected()?.name;
    const called = new Set(this.trusted().map((b) => b.name));
    const now = Date.now();
    const lastSeq = this.store.replication.lastSeq();
    return this.store.backups.list().map((row) => {
      const contact = row.lastContact === null ? undefined : Date.parse(row.lastContact);
      const isSelected = row.name === selected;
      // Acknowledged everything, or not since its last acknowledgement (a backup that applies
      // nothing acknowledges nothing, so a wedged copy's lag grows here).
      const lagSeconds = !isSelected
        ? null
        : row.ackedSeq >= lastSeq
          ? 0
          : row.ackedAt === null
            ? null
            : Math.max(0, Math.round((now - Date.parse(row.ackedAt)) / 100) / 10);
      const verdict = this.health.evaluate(row.name, {
        called: called.has(row.name),
        selected: isSelected,
        lastContactMs: contact,
        healthyWithinMs: this.options.healthyWithinMs,
        lagSeconds,
        now,
      });
      const call = called.has(row.name) ? this.health.lastCall(row.name) : undefined;
      return {
        name: row.name,
        url: row.url,
        fingerprint: row.fingerprint,
        selected: isSelected,
        health: verdict.health,
        healthReason: verdict.reason,
        lastContact: row.lastContact,
        lastReached: call?.ok ? new Date(call.at).toISOString() : null,
        replicationError: isSelected ? this.health.replicationError(row.name) : null,
        registeredAt: row.registeredAt,
        lagSeconds,
      };
    });
  }

  /**
   * Calls a backup at its advertised URL, its certificate verified and pinned, and records the
   * outcome (health); the reason, with its fix, when it fails.
   */
  async probe(backup: BackupRow, timeoutMs: number): Promise<string | undefined> {
    try {
      await this.peer(backup).json('/api/v1/ha/state', { timeoutMs });
      this.health.noteCall(backup.name, { ok: true, at: Date.now() });
      return undefined;
    } catch (err) {
      const message = explainCallFailure(err, backup.url);
      this.health.noteCall(backup.name, { ok: false, at: Date.now(), message });
      return message;
    }
  }

  /**
   * Selects one backup (by name) or none; a new selection starts a new stream. A backup this
   * primary cannot call at its URL with a verified certificate is refused: failback, and the
   * health checks, would fail on it later.
   */
  async select(name: string | null, by: string): Promise<BackupView[]> {
    if (name !== null) {
      const row = this.store.backups.get(name);
      if (!row)
        throw new MusterError('NOT_FOUND', `no backup named ${name}; see muster backup list`);
      if (this.selected()?.name !== name) {
        const why = await this.probe(row, SELECT_PROBE_MS);
        if (why !== undefined) {
          this.log.warn({ backup: name, url: row.url, by }, `backup not selected: ${why}`);
          throw unverifiedBackup(name, row.url, why);
        }
      }
    }
    return this.applySelection(name, by);
  }

  private applySelection(name: string | null, by: string): BackupView[] {
    if (name !== null && !this.store.backups.get(name))
      throw new MusterError('NOT_FOUND', `no backup named ${name}; see muster backup list`);
    const current = this.selected()?.name ?? null;
    if (current !== name) {
      this.store.transaction(() => {
        this.store.ha.setSelectedBackup(name ?? undefined);
        this.store.ha.setLastDeselection(undefined);
        // The one deselected may have run the cluster: it stays owed until it says it has not.
        if (current !== null) this.setOwed([...this.owed().filter((n) => n !== name), current]);
      });
      this.store.replication.setRecording(name !== null);
      this.log.info({ backup: name, by }, name ? 'backup selected' : 'no backup selected');
    }
    return this.list();
  }

  remove(name: string): void {
    if (!this.store.backups.get(name))
      throw new MusterError('NOT_FOUND', `no backup named ${name}`);
    if (this.selected()?.name === name) this.applySelection(null, 'removal');
    this.settle(name);
    this.store.backups.remove(name);
    this.pins.delete(name);
    this.health.forget(name);
    this.log.info({ backup: name }, 'backup removed');
  }

  term(): number {
    return this.store.ha.term();
  }

  /**
   * The backups this primary may call: the selected one first, then those selected earlier that
   * may still hold history. Never a registration no admin selected.
   */
  trusted(): BackupRow[] {
    const selected = this.selected();
    const owed = this.owed()
      .filter((name) => name !== selected?.name)
      .map((name) => this.store.backups.get(name))
      .filter((row): row is BackupRow => row !== undefined);
    return selected ? [selected, ...owed] : owed;
  }

  /** A formerly selected backup has nothing (more) to hand back: stop calling it. */
  settle(name: string): void {
    if (this.owed().includes(name)) this.setOwed(this.owed().filter((n) => n !== name));
  }

  /**
   * Backups that were selected and then deselected before they said they had nothing to hand
   * back: the only ones besides the selected backup that this primary calls (for their history).
   */
  private owed(): string[] {
    return this.store.ha.owed();
  }

  private setOwed(names: string[]): void {
    this.store.ha.setOwed(names);
  }

  /** Deselects the selected backup when it has been out of touch too long. */
  checkDeselection(now = Date.now()): void {
    const selected = this.selected();
    if (!selected) return;
    const contact = selected.lastContact === null ? 0 : Date.parse(selected.lastContact);
    const since = Math.max(contact, this.startedAt);
    if (now - since < this.options.deselectAfterMs) return;
    const minutes = Math.round(this.options.deselectAfterMs / 60_000);
    const reason = `not reached for ${minutes >= 1 ? `${minutes} min` : `${this.options.deselectAfterMs / 1000} s`}`;
    this.applySelection(null, 'deselection');
    this.store.audit.record({
      actor: 'system',
      actorKind: 'system',
      ip: null,
      action: 'backup.deselect',
      target: selected.name,
      details: { reason },
    });
    this.store.ha.setLastDeselection({
      name: selected.name,
      at: new Date(now).toISOString(),
      reason,
    });
    this.log.warn(
      { backup: selected.name, lastContact: selected.lastContact },
      `backup ${selected.name} deselected: ${reason}; Backup is now none until an admin selects one`,
    );
  }

  /** A client for calling `backup` at its URL, its certificate verified and pinned. */
  peer(backup: BackupRow): PeerClient {
    return this.options.peerFor(backup);
  }

  /** The last automatic deselection while none is selected since (null otherwise). */
  lastDeselection(): DeselectionView | null {
    const value = this.store.ha.lastDeselection();
    return value === undefined ? null : { name: value.name, at: value.at, reason: value.reason };
  }

  requireSelected(backup: BackupRow): void {
    if (this.selected()?.name !== backup.name)
      throw new MusterError('NOT_SELECTED', `backup ${backup.name} is not the selected backup`);
  }
}
