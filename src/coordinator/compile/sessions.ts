/**
 * Compile sessions (issue 13): `muster build -- make -jN` opens one, and its jobs are the tasks
 * of one open build (kind 'compile'), so the web UI and `muster builds show` see them. The
 * client reports the jobs that ran on its machine or came from the cache in batches (records,
 * also its heartbeat) and closes the session with its command's exit code. A session not heard
 * from for `idleTimeoutMs` is closed as failed ("the client went away"), so a killed client
 * leaves no open build behind.
 *
 * Restarts and failovers keep a session open: the open build is in the store (and replicated),
 * and the client goes on reporting to whichever coordinator answers. The idle clock starts again
 * when a coordinator first sees the session (its start, its takeover); a backup standing by
 * keeps no clock (it writes nothing).
 *
 * Remote jobs (POST …/jobs) run as tasks of the session's build (scheduler, compile-jobs.ts):
 * `job()` waits for one and answers its view (compile/jobs.ts), and keeps a result the client
 * may take as is in the shared cache under the key of what ran. A session with a job in flight
 * counts as heard from: a long compile does not let its session go idle.
 *
 * It answers in rows; the routes (api/compile-routes.ts) check the bodies and make views.
 */
import type { Logger } from 'pino';
import { compileJobKey } from '../../api/compile-job-key.js';
import { COMPILE_SESSION_KEY } from '../../api/compile-session-key.js';
import type { CompileJobView } from '../../api/views/compile.js';
import { MusterError } from '../../protocol/errors.js';
import type { BuildWithTasks, BuildLog } from '../builds/builds.js';
import type { BuildControl } from '../engine.js';
import type { EventBus } from '../events.js';
import type { AgentSnapshot } from '../pool/agent-snapshot.js';
import { Sleeper } from '../ha/sleeper.js';
import type { Store } from '../store/store.js';
import type {
  BuildRow,
  CompileRecord,
  CompileSummary,
  NewCacheEntry,
  TaskRow,
} from '../store/types.js';
import { SupervisedLoop } from '../supervised-loop.js';
import { jobCacheEntry, jobSpec, jobView, type CompileJobBody } from './jobs.js';

/** Open sessions one user may hold (each is an open build). */
export const MAX_OPEN_SESSIONS_PER_USER = 16;
/** Characters of the command kept as the build's name. */
const NAME_LENGTH = 200;

/** An agent that can take work now, and the machine it runs on if it said (its boot id hash). */
export interface CapacityAgent {
  name: string;
  slots: number;
  bootId: string | undefined;
}

export interface SessionCapacity {
  agents: { name: string; slots: number; sameMachine: boolean | null }[];
}

export interface CompileSessionsContext {
  store: Pick<
    Store,
    | 'createOpenBuild'
    | 'countOpenBuilds'
    | 'listOpenBuilds'
    | 'appendRecords'
    | 'getBuild'
    | 'getBuildByUid'
    | 'listTasks'
    | 'cache'
  >;
  /**
   * The scheduler: it holds an open build like any other (so a cancel ends it), and closing goes
   * through it, so it stops holding the build.
   */
  builds: Pick<BuildControl, 'submit' | 'close' | 'addJob'>;
  /** The blob store's sizes: a job's text must be there as declared, its object to be cached. */
  blobs: { sizeOf(sha256: string): Promise<number | undefined> };
  /** Keeps a job's blobs from the sweep while it runs, and counts them used once referenced. */
  uploads: {
    hold(hashes: Iterable<string>): () => void;
    referenced(hashes: Iterable<string>): void;
  };
  events: Pick<EventBus, 'emit' | 'listenerCount'>;
  /** The agents able to take work now. */
  agents(): CapacityAgent[];
  /** Whether this coordinator writes its own state now (not a backup standing by). */
  writes(): boolean;
  log: Logger;
  idleTimeoutMs: number;
  /** The clock of the idle check (tests pass their own). */
  now?: () => number;
  /** The least time between two 'build' events of one session's records (default 1 s). */
  buildEventMs?: number;
}

/**
 * Whether an agent runs on the client's machine: the same kernel boot id (hashed the same way on
 * both ends) means the same cores. null: one of them did not say (an older agent or client).
 */
export function sameMachine(
  clientBootId: string | undefined,
  agentBootId: string | undefined,
): boolean | null {
  if (clientBootId === undefined || agentBootId === undefined) return null;
  return clientBootId === agentBootId;
}

/**
 * The agents that can take work now (connected, with this coordinator's lease), as a session's
 * capacity counts them, with the boot id each reported in `ready.capacity` (none: an older agent).
 */
export function capacityAgents(snapshots: readonly AgentSnapshot[]): CapacityAgent[] {
  return snapshots
    .filter((a) => a.status === 'connected' || a.status === 'busy')
    .map((a) => ({ name: a.name, slots: a.slots, bootId: a.bootId ?? undefined }));
}

export class CompileSessions {
  /** When each open session was last heard from (ms, this.now()), by build id. */
  private readonly lastHeard = new Map<number, number>();
  /** Jobs of each session whose client waits for them now. */
  private readonly waiting = new Map<number, number>();
  /** Sessions whose records changed since their last 'build' event, and its timer. */
  private readonly eventDue = new Map<number, NodeJS.Timeout>();
  private readonly pause = new Sleeper();
  private loop: SupervisedLoop | undefined;
  private readonly now: () => number;

  constructor(private readonly ctx: CompileSessionsContext) {
    this.now = ctx.now ?? Date.now;
  }

  /** Opens a session: an open build named after the command, and the pool's capacity. */
  open(
    request: { command: string; cwd: string; host: string; bootId?: string | undefined },
    user: string,
    log: BuildLog,
  ): { build: BuildRow; capacity: SessionCapacity } {
    const { store } = this.ctx;
    if (store.countOpenBuilds(user) >= MAX_OPEN_SESSIONS_PER_USER)
      throw new MusterError(
        'TOO_MANY_COMPILE_SESSIONS',
        `${user} has ${MAX_OPEN_SESSIONS_PER_USER} compile sessions open: close one, or wait until an idle one ends`,
        { max: MAX_OPEN_SESSIONS_PER_USER },
      );
    const build = store.createOpenBuild({
      name: oneLine(request.command).slice(0, NAME_LENGTH),
      createdBy: user,
      kind: 'compile',
    });
    this.lastHeard.set(build.id, this.now());
    this.ctx.builds.submit(build);
    log.info(
      { build: build.id, user, host: request.host, cwd: request.cwd },
      'compile session opened',
    );
    this.emitBuild(build, []);
    const capacity: SessionCapacity = {
      agents: this.ctx.agents().map((agent) => ({
        name: agent.name,
        slots: agent.slots,
        sameMachine: sameMachine(request.bootId, agent.bootId),
      })),
    };
    return { build, capacity };
  }

  /** Appends a batch of jobs (possibly none: a heartbeat) to the user's open session. */
  record(id: string, records: readonly CompileRecord[], user: string): TaskRow[] {
    const build = this.ownOpen(id, user);
    const rows = records.length === 0 ? [] : this.ctx.store.appendRecords(build.id, records);
    this.lastHeard.set(build.id, this.now());
    if (rows.length > 0 && this.ctx.events.listenerCount > 0) {
      for (const row of rows) this.ctx.events.emit('task', { buildId: build.id, row });
      this.buildEventSoon(build.id);
    }
    return rows;
  }

  /**
   * Runs one remote job in the user's open session and answers how it ended. `gone` aborts when
   * the client stops waiting: the job is cancelled. BLOB_NOT_FOUND / BLOB_SIZE_MISMATCH when the
   * text is not in the blob store as declared; the errors of ownOpen.
   */
  async job(
    id: string,
    body: CompileJobBody,
    user: string,
    gone: AbortSignal,
  ): Promise<CompileJobView> {
    const build = this.ownOpen(id, user);
    this.lastHeard.set(build.id, this.now());
    const key = compileJobKey(body);
    const { sha256, size } = body.source;
    const release = this.ctx.uploads.hold([sha256]);
    this.waiting.set(build.id, (this.waiting.get(build.id) ?? 0) + 1);
    try {
      const stored = await this.ctx.blobs.sizeOf(sha256);
      if (stored === undefined)
        throw new MusterError('BLOB_NOT_FOUND', `no blob ${sha256}: upload the text first`);
      if (stored !== size)
        throw new MusterError(
          'BLOB_SIZE_MISMATCH',
          `blob ${sha256} has ${stored} bytes, not ${size}`,
        );
      const handle = this.ctx.builds.addJob(build.id, {
        label: body.label,
        spec: jobSpec(body),
        maxQueueMs: body.maxQueueMs,
      });
      const cancel = (): void => handle.cancel();
      if (gone.aborted) cancel();
      else gone.addEventListener('abort', cancel, { once: true });
      const end = await handle.ended.finally(() => gone.removeEventListener('abort', cancel));
      const objectPath = body.input.outputs[0].path;
      const view = jobView(handle.task, end, key, objectPath);
      const entry = jobCacheEntry(view, end, {
        key,
        objectPath,
        toolchain: body.input.toolchain,
        buildUid: build.uid,
        user,
      });
      if (entry !== undefined && body.keep) await this.keep(entry);
      return view;
    } finally {
      release();
      const left = (this.waiting.get(build.id) ?? 1) - 1;
      if (left > 0) this.waiting.set(build.id, left);
      else this.waiting.delete(build.id);
      this.lastHeard.set(build.id, this.now());
    }
  }

  /**
   * Keeps a result the client takes as is in the shared cache, whatever Cache.AcceptClientResults
   * says: this coordinator obtained it from its own agent. A failure here costs a future hit only.
   */
  private async keep(entry: NewCacheEntry): Promise<void> {
    const hashes = entry.outputs.map((o) => o.sha256);
    const release = this.ctx.uploads.hold(hashes);
    try {
      const sizes = new Map<string, number>();
      for (const hash of hashes) {
        const size = await this.ctx.blobs.sizeOf(hash);
        if (size !== undefined) sizes.set(hash, size);
      }
      this.ctx.store.cache.putEntry(entry, (hash) => sizes.get(hash));
      this.ctx.uploads.referenced(hashes);
    } catch (err) {
      this.ctx.log.warn({ err, key: entry.key }, 'could not keep a remote compile in the cache');
    } finally {
      release();
    }
  }

  /** Closes the user's open session with its command's exit code and the client's counts. */
  close(
    id: string,
    end: { exitCode: number | null; summary: CompileSummary },
    user: string,
    log: BuildLog,
  ): BuildWithTasks {
    const build = this.ownOpen(id, user);
    const closed = this.ctx.builds.close(build.id, {
      exitCode: end.exitCode,
      summary: end.summary,
    });
    this.lastHeard.delete(build.id);
    log.info(
      { build: build.id, user, exitCode: end.exitCode, status: closed.status },
      'compile session closed',
    );
    const tasks = this.ctx.store.listTasks(build.id);
    this.emitBuild(closed, tasks);
    return { build: closed, tasks };
  }

  /**
   * One idle check: closes the sessions not heard from for idleTimeoutMs. A session first seen
   * here (after a restart or a takeover) starts its clock now. Returns the ids it closed.
   */
  closeIdle(): number[] {
    if (!this.ctx.writes()) {
      // A standby's clocks would be stale by the time it takes over.
      this.lastHeard.clear();
      return [];
    }
    const now = this.now();
    const open = this.ctx.store.listOpenBuilds();
    const openIds = new Set(open.map((b) => b.id));
    for (const id of this.lastHeard.keys()) if (!openIds.has(id)) this.lastHeard.delete(id);
    const closed: number[] = [];
    for (const build of open) {
      if (this.waiting.has(build.id)) this.lastHeard.set(build.id, now);
      const heard = this.lastHeard.get(build.id);
      if (heard === undefined) {
        this.lastHeard.set(build.id, now);
        continue;
      }
      if (now - heard < this.ctx.idleTimeoutMs) continue;
      this.lastHeard.delete(build.id);
      try {
        const row = this.ctx.builds.close(build.id, {
          exitCode: null,
          summary: null,
          error: 'the client went away',
        });
        closed.push(build.id);
        this.ctx.log.warn(
          { build: build.id, user: build.createdBy, idleMs: now - heard },
          'compile session closed: the client went away',
        );
        this.emitBuild(row, this.ctx.store.listTasks(build.id));
      } catch (err) {
        // Closed meanwhile by its client or a cancel: nothing to do.
        if (!(err instanceof MusterError && err.code === 'COMPILE_SESSION_CLOSED')) throw err;
      }
    }
    return closed;
  }

  /** Starts the idle check (every quarter of the timeout, at most every 10 s). */
  start(): void {
    if (this.loop) return;
    const period = Math.max(10, Math.min(10_000, Math.floor(this.ctx.idleTimeoutMs / 4)));
    const pause = this.pause;
    this.loop = new SupervisedLoop(
      'compile session idle check',
      async () => {
        while (!pause.stopped) {
          await pause.sleep(period);
          if (pause.stopped) return;
          this.closeIdle();
        }
      },
      { log: this.ctx.log },
    ).start();
  }

  async stop(): Promise<void> {
    this.pause.stop();
    await this.loop?.stop();
    for (const timer of this.eventDue.values()) clearTimeout(timer);
    this.eventDue.clear();
  }

  /**
   * One 'build' event (the build and all its tasks, read from the store) for the records of the
   * next buildEventMs, not one per batch: a session of n jobs would read O(n²) rows otherwise.
   */
  private buildEventSoon(buildId: number): void {
    if (this.eventDue.has(buildId)) return;
    const timer = setTimeout(() => {
      this.eventDue.delete(buildId);
      const build = this.ctx.store.getBuild(buildId);
      if (build?.open) this.emitBuild(build, this.ctx.store.listTasks(buildId));
    }, this.ctx.buildEventMs ?? 1000);
    timer.unref();
    this.eventDue.set(buildId, timer);
  }

  /**
   * The open compile session `id` of `user` (its key or its build id, sessionBuild):
   * NOT_FOUND, FORBIDDEN or COMPILE_SESSION_CLOSED.
   */
  private ownOpen(id: string, user: string): BuildRow {
    const build = sessionBuild(this.ctx.store, id);
    if (!build || build.kind !== 'compile')
      throw new MusterError('NOT_FOUND', `no compile session ${id}`);
    if (build.createdBy !== user)
      throw new MusterError(
        'FORBIDDEN',
        `compile session ${id} is ${build.createdBy}'s: only its own client reports to it (cancel it as a build instead)`,
      );
    if (!build.open)
      throw new MusterError(
        'COMPILE_SESSION_CLOSED',
        `compile session ${id} has ended (${build.status}${build.error ? `: ${build.error}` : ''})`,
        { buildId: build.id, status: build.status },
      );
    return build;
  }

  private emitBuild(build: BuildRow, tasks: TaskRow[]): void {
    clearTimeout(this.eventDue.get(build.id));
    this.eventDue.delete(build.id);
    this.ctx.events.emit('build', { build, tasks });
  }
}

/**
 * The build a client names in …/compile-sessions/{id}/…: by the session's key (the build's uid)
 * or by its id (see api/compile-session-key.ts). The caller still checks the owner.
 */
export function sessionBuild(
  store: Pick<Store, 'getBuild' | 'getBuildByUid'>,
  id: string,
): BuildRow | undefined {
  if (COMPILE_SESSION_KEY.test(id)) return store.getBuildByUid(id);
  if (/^\d{1,15}$/.test(id)) return store.getBuild(Number(id));
  return undefined;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
