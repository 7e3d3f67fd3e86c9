/**
 * Failback, driven by the primary. It asks its selected backup where it is; when the backup is
 * running the cluster (or has history it never handed back), the primary:
 *
 *   1. asks it to stop and give the agents' leases back (handback/begin), and stops its own engine;
 *   2. copies the backup's history: every build the backup created or changed, with tasks,
 *      attempts, log chunks and the blobs they refer to, plus the logins made there and the
 *      compile cache's rows (cache-handback.ts);
 *   3. takes a term above the backup's and starts its engine again: the agents grant it their
 *      leases, and the scheduler re-attaches the attempts still running;
 *   4. tells the backup it is done (handback/done): the backup stands by and takes a new snapshot.
 *
 * How far each build's log was merged is kept in a setting, so a failback cut short and run again
 * neither loses nor repeats a log chunk.
 */
import type { Logger } from 'pino';
import type { BlobStore } from '../../common/blob-store.js';
import { MusterError, toMusterError } from '../../protocol/errors.js';
import type { BackupRow } from '../store/backups.js';
import type { Store } from '../store/store.js';
import type { TakeoverRecord } from '../store/ha-state.js';
import type { BackupState } from './backup-states.js';
import {
  backupStateSchema,
  buildHistorySchema,
  fromBackup,
  handbackBeginSchema,
  handedBackAuditSchema,
  handedBackTokensSchema,
  AUDIT_HANDBACK_PAGE,
} from './history-schema.js';
import { fetchMissingBlobs, shaList } from './blob-sync.js';
import { takeBackCache, type CacheHandback } from './cache-handback.js';
import type { EnginePort } from './engine-port.js';
import type { PeerClient } from './peer-client.js';
import { explainCallFailure } from './backup-health.js';
import type { PrimarySide } from './primary-side.js';

/** The highest lease term agents grant. */
const MAX_TERM = 2 ** 31 - 1;
const LOG_PAGE = 2000;

export type BackupSeen = BackupState | 'unreachable' | 'none';

export class Failback {
  /** What the selected backup said last. */
  backupState: BackupSeen = 'none';
  /** Whether it said it has history this primary has not taken back. */
  private backupHistory = false;
  /** Whether a deselected backup still to be heard from said it runs the cluster or has history. */
  private owedBusy = false;
  /** Since when the selected backup has not answered (undefined while it answers). */
  private unreachableSince: number | undefined = Date.now();
  private running: Promise<void> | undefined;
  private readonly reachable = new Map<string, boolean>();
  /** After a failback that did not complete: when to try again, and the delay used. */
  private readonly retry = new Map<string, { at: number; delayMs: number }>();

  constructor(
    private readonly store: Store,
    private readonly blobs: BlobStore,
    private readonly engine: EnginePort,
    private readonly primary: PrimarySide,
    private readonly log: Logger,
    /** Tokens handed back live at most this long from their creation, like this primary's. */
    private readonly tokenTtlMs: number,
  ) {}

  /** Asks the selected backup once and fails back when it runs the cluster. */
  check(timeoutMs: number): Promise<void> {
    this.running ??= this.doCheck(timeoutMs).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /**
   * Asks the selected backup, and those deselected before they said they have nothing to hand
   * back (one deselected while it ran the cluster still has to hand its history back). A
   * registration no admin selected is never called: it could answer anything.
   */
  private async doCheck(timeoutMs: number): Promise<void> {
    const selected = this.primary.selected();
    const ordered = this.primary.trusted();
    const states = await Promise.all(
      ordered.map(async (backup) => {
        try {
          const peer = this.primary.peer(backup);
          const body = fromBackup(
            backupStateSchema,
            (await peer.json('/api/v1/ha/state', { timeoutMs })).body,
            'state',
          );
          this.noteReachable(backup, true);
          return { backup, peer, state: body };
        } catch (err) {
          this.noteReachable(backup, false, err);
          return { backup, peer: undefined, state: undefined };
        }
      }),
    );
    // A backup deselected while it ran the cluster still holds agents and history.
    this.owedBusy = states.some(
      ({ backup, state }) =>
        backup.name !== selected?.name &&
        state !== undefined &&
        (state.state !== 'standby' || state.history),
    );
    const seen = selected ? states[0]?.state : undefined;
    this.backupState = !selected ? 'none' : (seen?.state ?? 'unreachable');
    this.backupHistory = seen?.history ?? false;
    if (!selected || seen) this.unreachableSince = undefined;
    else this.unreachableSince ??= Date.now();
    for (const { backup, peer, state } of states) {
      if (!peer || !state) continue;
      const owed = backup.name !== selected?.name;
      if (owed && state.state === 'standby' && !state.history) this.primary.settle(backup.name);
      if (state.state === 'active' || state.state === 'taking-over' || state.history) {
        // A failback that keeps failing stops this primary's engine each time: back off.
        if ((this.retry.get(backup.name)?.at ?? 0) > Date.now()) continue;
        await this.handback(backup, peer);
      }
    }
  }

  /**
   * Whether this primary may take an agent whose expired lease was last held with a higher term
   * (by its backup): only once the selected backup said it stands by with nothing to hand back,
   * or has not answered for `presumeDeadMs` (it died while running the cluster). Taking agents
   * earlier would run builds from a copy that lacks what the backup did.
   */
  mayOutbid(presumeDeadMs: number): boolean {
    if (this.owedBusy) return false;
    if (this.backupState === 'none') return true;
    if (this.backupState === 'unreachable')
      return (
        this.unreachableSince !== undefined && Date.now() - this.unreachableSince >= presumeDeadMs
      );
    return this.backupState === 'standby' && !this.backupHistory;
  }

  /**
   * Records the call in the backup's health, and logs when a backup stops (or starts again)
   * answering this primary.
   */
  private noteReachable(backup: BackupRow, reachable: boolean, err?: unknown): void {
    const name = backup.name;
    const why = reachable ? undefined : explainCallFailure(err, backup.url);
    this.primary.health.noteCall(name, { ok: reachable, at: Date.now(), message: why });
    const before = this.reachable.get(name);
    this.reachable.set(name, reachable);
    if (before === reachable || (before === undefined && reachable)) return;
    if (reachable) this.log.info({ backup: name }, 'the backup answers this primary again');
    else this.log.warn({ backup: name }, `this primary cannot reach the backup: ${why ?? ''}`);
  }

  private async handback(backup: BackupRow, peer: PeerClient): Promise<void> {
    this.log.warn({ backup: backup.name }, 'the backup ran the cluster: taking it back');
    const started = Date.now();
    try {
      const begun = fromBackup(
        handbackBeginSchema,
        (await peer.json('/api/v1/ha/handback/begin', { method: 'POST', timeoutMs: 30_000 })).body,
        'handback',
      );
      if (this.engine.running) await this.engine.stop(false);
      let builds = 0;
      let cache: CacheHandback | undefined;
      let audit = 0;
      if (begun.takeover) {
        for (const id of begun.builds) {
          await this.mergeBuild(peer, id, begun.takeover);
          builds++;
        }
        const tokens = fromBackup(
          handedBackTokensSchema,
          (await peer.json('/api/v1/ha/history/tokens')).body,
          'token list',
        );
        // Only for users this primary has, with the role they have here (see mergeTokens), and
        // only tokens the backup can have made while it ran the cluster, living no longer than
        // this primary's own: a backup cannot hand back a token of its choosing for ever.
        this.store.replication.mergeTokens(
          tokensMadeSince(tokens, begun.takeover.at, Date.now(), this.tokenTtlMs),
        );
        audit = await this.mergeAudit(peer, begun.takeover);
        // The cache is an optimisation: a backup whose cache rows cannot be taken back (a bad
        // blob, a page too big or refused) must not keep the cluster by it. Logged, and the
        // failback goes on; those compiles are cached again when next run.
        try {
          cache = await takeBackCache(peer, this.store, this.blobs);
        } catch (err) {
          this.log.warn(
            { err, backup: backup.name },
            "taking back the backup's compile cache failed; failing back without it",
          );
        }
      }
      const term = Math.max(this.primary.term(), begun.term) + 1;
      if (term > MAX_TERM)
        throw new MusterError(
          'VALIDATION_FAILED',
          `the backup's term ${begun.term} leaves no term to take back the agents with`,
        );
      this.store.ha.setTerm(term);
      await peer.json('/api/v1/ha/handback/done', { method: 'POST', timeoutMs: 30_000 });
      this.store.ha.setFailbackProgress(undefined);
      // The backup's copy diverged: a new stream makes it start again from a snapshot. (A backup
      // that is not the selected one gets no stream; the selected one's goes on.)
      if (this.primary.selected()?.name === backup.name) this.store.replication.setRecording(true);
      else this.primary.settle(backup.name);
      this.backupState = 'standby';
      this.backupHistory = false;
      this.owedBusy = false;
      this.retry.delete(backup.name);
      this.primary.health.noteFailback(backup.name, undefined);
      this.store.audit.record({
        actor: 'system',
        actorKind: 'system',
        ip: null,
        action: 'ha.failback',
        target: backup.name,
        details: { builds, auditRows: audit, term },
      });
      this.log.warn(
        { backup: backup.name, builds, audit, cache, term, ms: Date.now() - started },
        "failback: the backup's history is merged; taking the agents back",
      );
    } catch (err) {
      const error = toMusterError(err);
      const delayMs = Math.min((this.retry.get(backup.name)?.delayMs ?? 2500) * 2, 300_000);
      this.retry.set(backup.name, { at: Date.now() + delayMs, delayMs });
      this.primary.health.noteFailback(backup.name, `${error.code}: ${error.message}`);
      this.log.error(
        { backup: backup.name, code: error.code, retryInMs: delayMs },
        `failback did not complete (tried again in ${Math.round(delayMs / 1000)} s): ${error.message}`,
      );
    } finally {
      if (!this.engine.running) {
        this.engine.startPool(this.primary.term());
        this.engine.startScheduler();
      }
    }
  }

  private async mergeBuild(peer: PeerClient, id: number, takeover: TakeoverRecord): Promise<void> {
    let after = this.mergedLogId(takeover.term, id) ?? takeover.maxLogId;
    for (;;) {
      const { body } = await peer.json(`/api/v1/ha/history/builds/${id}`, {
        query: { afterLog: after, limit: LOG_PAGE },
        timeoutMs: 60_000,
      });
      const history = fromBackup(buildHistorySchema, body, `history of build ${id}`);
      const hashes = [
        ...shaList(String(history.build.files)),
        ...history.tasks.flatMap((t) => shaList(String(t.outputs))),
      ];
      await fetchMissingBlobs(peer, this.blobs, hashes);
      const last = history.logs.at(-1);
      const next = last === undefined ? after : Number(last.id);
      this.store.transaction(() => {
        this.store.replication.mergeBuildHistory(history, history.logs);
        this.saveProgress(takeover.term, id, next);
      });
      after = next;
      if (history.logs.length < LOG_PAGE) return;
    }
  }

  /**
   * Takes back the audit rows the backup wrote since its takeover, a page at a time; rows already
   * here (same uid: a failback run again) are skipped. Only rows dated between the takeover and
   * now: a backup cannot put a change into this log's past. Returns how many were added.
   */
  private async mergeAudit(peer: PeerClient, takeover: TakeoverRecord): Promise<number> {
    const from = Date.parse(takeover.at);
    let after = 0;
    let added = 0;
    for (;;) {
      const rows = fromBackup(
        handedBackAuditSchema,
        (
          await peer.json('/api/v1/ha/history/audit', {
            query: { after, limit: AUDIT_HANDBACK_PAGE },
            timeoutMs: 30_000,
          })
        ).body,
        'audit rows',
      );
      const now = Date.now();
      added += this.store.audit.merge(rows.filter((r) => r.at >= from && r.at <= now));
      const last = rows.at(-1);
      if (last === undefined || rows.length < AUDIT_HANDBACK_PAGE || last.id <= after) return added;
      after = last.id;
    }
  }

  private mergedLogId(term: number, buildId: number): number | undefined {
    const progress = this.store.ha.failbackProgress();
    if (progress === undefined || progress.term !== term) return undefined;
    return progress.logs[String(buildId)];
  }

  private saveProgress(term: number, buildId: number, logId: number): void {
    const progress = this.store.ha.failbackProgress();
    const logs = progress !== undefined && progress.term === term ? progress.logs : {};
    this.store.ha.setFailbackProgress({ term, logs: { ...logs, [String(buildId)]: logId } });
  }
}

/** The handed-back tokens made between the takeover and now, expiring within `ttlMs` of that. */
export function tokensMadeSince<T extends { created_at: string; expires_at: string }>(
  tokens: T[],
  since: string,
  now: number,
  ttlMs: number,
): T[] {
  const from = Date.parse(since);
  return tokens.flatMap((token) => {
    const created = Date.parse(token.created_at);
    if (!(created >= from && created <= now)) return [];
    const latest = created + ttlMs;
    const expires = Date.parse(token.expires_at);
    return [expires <= latest ? token : { ...token, expires_at: new Date(latest).toISOString() }];
  });
}
