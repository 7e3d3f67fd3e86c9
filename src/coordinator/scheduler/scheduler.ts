/**
 * The scheduler: dispatches ready tasks to free agent slots (matching `requires` labels), feeds
 * them their inputs and the outputs of the tasks they need, records every attempt, retries on
 * failure (up to `retries`) and on agent loss, and survives its own restart by re-attaching to
 * attempts still running on agents.
 *
 * One attempt runs on one agent under one agent task id. An attempt whose agent went away waits
 * `agentLossGraceMs` for the agent to return (it keeps running there, and is re-attached); only
 * then is it marked lost and the task retried elsewhere, and if the old agent comes back later it
 * is told to cancel the stale attempt. So a task never has two live attempts on our orders.
 *
 * Each dispatch runs under an agent task id of its own (agent-task-id.ts), so no sequence of
 * coordinator deaths and returns makes a start collide with an earlier one. What an agent runs
 * under an id this store never recorded (an orphan: the dispatch of a backup, or of a primary,
 * that died before its history reached this coordinator) is adopted when it connects, if it is
 * an attempt of a task this coordinator would otherwise start; a duplicate of a task it runs or
 * has settled is cancelled (or released, when done); one of a build it does not know is left to
 * its owner's history and to the agent's task grace.
 */
import type { Logger } from 'pino';
import type { BlobStore } from '../../common/blob-store.js';
import type { OutputChunk } from '../../protocol/client/agent-client.js';
import { MusterError, toMusterError } from '../../protocol/errors.js';
import type { TaskInfo } from '../../protocol/messages.js';
import type { TaskResult } from '../../protocol/task-types.js';
import type { EventBus } from '../events.js';
import type { Store } from '../store/store.js';
import type { AttemptRow, BuildRow, CompileSessionEnd, TaskRow } from '../store/types.js';
import type { AttemptStatus } from '../../api/status.js';
import { ActiveBuild, isTerminal, type TaskState } from './active-build.js';
import { acceptResult, resultDetail } from './agent-result.js';
import { buildOutcome } from './build-outcome.js';
import { cancelRequestedFields, isCancelRequested } from './cancel-request.js';
import { isOfBuild, newAgentTaskId, parseAgentTaskId, type AgentTaskId } from './agent-task-id.js';
import {
  jobEnd,
  jobPlanTask,
  jobQueueCap,
  type JobEnd,
  type JobHandle,
  type JobReason,
  type JobState,
  type NewCompileJob,
} from './compile-jobs.js';
import { inputsOf, pickAgent, providesToolchain } from './placement.js';
import type { SchedulerAgent, SchedulerClient, SchedulerPool } from './ports.js';
import { OutputMask, type SecretValues } from './secret-mask.js';
import type { TaskCache } from './task-cache.js';

export interface SchedulerContext {
  store: Store;
  pool: SchedulerPool;
  blobs: BlobStore;
  events: EventBus;
  log: Logger;
  agentLossGraceMs: number;
  /** Extra attempts allowed for agent loss, on top of a task's `retries`. */
  lossRetries?: number;
  /**
   * When to tell the agent it may forget a finished task (default: at once). A primary with a
   * backup waits until the backup has the result, so a backup that takes over re-attaches and
   * reads it instead of running the task again.
   */
  deferRelease?: (release: () => void) => void;
  /** Serves and stores `cache: true` tasks (task-cache.ts); without it they always run. */
  taskCache?: TaskCache;
  /** The values of a task's `secrets:`, opened at its dispatch (and to mask them). */
  secrets?: SecretValues;
}

interface InFlight {
  attempt: AttemptRow;
  build: ActiveBuild;
  task: TaskState;
  /** 'attached': we follow its result on a live connection; 'detached': waiting for the agent. */
  state: 'attached' | 'detached';
  lostTimer: NodeJS.Timeout | undefined;
  connection: SchedulerAgent | undefined;
  cancelRequested: boolean;
  /** Masks its secrets' values in its output and error (set when it names secrets). */
  mask?: OutputMask;
}

export class Scheduler {
  private readonly builds = new Map<number, ActiveBuild>();
  private readonly inFlight = new Map<string, InFlight>();
  private scheduling = false;
  /** Attempts that ended this turn, recorded together by flushFinishing(). */
  private readonly finishing: { flight: InFlight; finish: () => void }[] = [];
  private batching = false;
  private passRequested = false;
  private readonly toExecute: (() => void)[] = [];
  private again = false;
  private stopped = false;
  /**
   * The build that got the last slot: the next pass scans the builds after it first, so freed
   * slots go round the builds with ready work (a compile session that keeps many jobs queued
   * for hours does not take every slot from the builds behind it).
   */
  private lastServed: number | undefined;

  constructor(private readonly ctx: SchedulerContext) {}

  /** Loads unfinished builds and attempts (after a restart: re-attached as agents connect). */
  start(): void {
    const { store } = this.ctx;
    for (const row of store.listActiveBuilds()) this.load(row);
    for (const attempt of store.listRunningAttempts()) {
      const build = this.builds.get(attempt.buildId);
      const task = build?.tasks.get(attempt.taskName);
      if (!build || !task) {
        store.finishAttempt(attempt.id, 'lost', { finishedAt: now(), error: 'its build is gone' });
        continue;
      }
      // A task that ended while this attempt was unknown to the coordinator that ended it: after
      // a failback, one this primary started just before it died, which never reached its backup
      // (the backup ran the task itself). Not followed, so its end cannot reopen the task; the
      // agent cancels or forgets it when it connects (settleUnfollowed: a stale attempt).
      if (isTerminal(task.row.status)) {
        this.ctx.log.info(
          {
            build: build.id,
            task: attempt.taskName,
            attempt: attempt.number,
            agent: attempt.agent,
          },
          'not following an attempt of a task that has ended (another coordinator ran it)',
        );
        store.finishAttempt(attempt.id, 'lost', {
          finishedAt: now(),
          error: `its task had already ${task.row.status === 'succeeded' ? 'succeeded' : 'ended'} (another coordinator of the cluster ran it)`,
        });
        continue;
      }
      const flight: InFlight = {
        attempt,
        build,
        task,
        state: 'detached',
        lostTimer: undefined,
        connection: undefined,
        cancelRequested: build.cancelling,
      };
      this.inFlight.set(attempt.agentTaskId, flight);
      build.inFlight++;
      this.armLost(flight);
    }
    this.schedule();
  }

  stop(): void {
    this.flushFinishing();
    this.stopped = true;
    for (const flight of this.inFlight.values()) clearTimeout(flight.lostTimer);
    // Their clients are answered now (they compile the jobs themselves); the rows are settled
    // by the next scheduler that loads the build (settleUnwaitedJobs).
    for (const build of this.builds.values()) {
      for (const state of build.liveJobs()) {
        const job = state.job!;
        clearTimeout(job.queueTimer);
        job.end({ status: 'cancelled', reason: null, row: state.row, result: undefined });
      }
    }
  }

  get runningCount(): number {
    return this.inFlight.size;
  }

  /** Tasks ready to run that wait for a free slot (what /metrics calls the queue). */
  get queuedCount(): number {
    let queued = 0;
    for (const build of this.builds.values()) queued += build.ready.size;
    return queued;
  }

  /** Builds this scheduler runs (not yet ended). */
  get activeBuilds(): number {
    return this.builds.size;
  }

  /** A new build was stored: start scheduling it. */
  submit(row: BuildRow): void {
    if (this.stopped) return;
    this.load(row);
    this.schedule();
  }

  cancel(buildId: number): void {
    if (this.stopped) return;
    const build = this.builds.get(buildId);
    if (!build) return;
    build.cancelling = true;
    // Remembered in the store, so a restart mid-cancel goes on cancelling.
    this.ctx.store.setBuildStatus(buildId, build.row.status, cancelRequestedFields);
    build.row = { ...build.row, ...cancelRequestedFields };
    const at = now();
    this.ctx.store.transaction(() => {
      for (const state of build.tasks.values()) {
        if (state.row.status === 'pending' || state.row.status === 'queued') {
          this.setTask(build, state, {
            status: 'cancelled',
            finishedAt: at,
            error: 'build cancelled',
          });
        }
      }
    });
    build.ready.clear();
    for (const flight of [...this.inFlight.values()]) {
      if (flight.build === build) this.cancelFlight(flight, 'build cancelled');
    }
    this.maybeFinish(build);
  }

  /**
   * Asks an attempt's agent to stop it; when the agent is away, records the attempt as cancelled
   * now (it is cancelled there on return).
   */
  private cancelFlight(flight: InFlight, why: string): void {
    flight.cancelRequested = true;
    if (flight.state === 'attached' && flight.connection?.client) {
      void flight.connection.client
        .cancelTask(flight.attempt.agentTaskId)
        .catch(this.agentCallFailed('cancel', flight.attempt.agent, flight.attempt.agentTaskId));
    } else {
      this.finishFlight(flight, 'cancelled', { status: 'cancelled', durationMs: 0 }, why);
    }
  }

  /**
   * Ends an open build (a compile session) as its client said, or as the coordinator decided
   * (idle): the store's row, and the build no longer scheduled. Its remote jobs still queued or
   * running are cancelled (nobody will take their results); those running end on their agents.
   */
  close(buildId: number, end: CompileSessionEnd): BuildRow {
    const row = this.ctx.store.closeBuild(buildId, end);
    const build = this.builds.get(buildId);
    this.builds.delete(buildId);
    if (build && !this.stopped) {
      for (const state of build.liveJobs()) this.cancelJob(build, state, 'its session ended');
    }
    return row;
  }

  /** An agent (re)connected: re-attach what runs there, cancel what is stale, dispatch. */
  onAgentReady(connection: SchedulerAgent): void {
    if (this.stopped) return;
    void this.reattach(connection)
      .catch((err: unknown) =>
        this.ctx.log.warn({ agent: connection.name, err }, 're-attach failed'),
      )
      .finally(() => this.scheduleSoon());
  }

  onAgentLost(connection: SchedulerAgent): void {
    if (this.stopped) return;
    for (const flight of this.inFlight.values()) {
      if (flight.attempt.agent === connection.name && flight.state === 'attached') {
        flight.state = 'detached';
        flight.connection = undefined;
        this.armLost(flight);
      }
    }
  }

  /**
   * One pass for everything that asked during this turn of the event loop: thousands of agents
   * connecting at once (a coordinator restart) would otherwise each pay a full pass.
   */
  private scheduleSoon(): void {
    if (this.passRequested) return;
    this.passRequested = true;
    setImmediate(() => {
      this.passRequested = false;
      this.schedule();
    });
  }

  /** Runs a scheduling pass now (or right after the current one). */
  schedule(): void {
    if (this.stopped) return;
    if (this.scheduling) {
      this.again = true;
      return;
    }
    this.scheduling = true;
    try {
      do {
        this.again = false;
        this.pass();
      } while (this.again);
    } catch (err) {
      this.ctx.log.error({ err }, 'scheduling pass failed');
    } finally {
      this.scheduling = false;
    }
  }

  // ---- internals ----------------------------------------------------------------------------

  private load(row: BuildRow): void {
    if (this.builds.has(row.id)) return;
    const rows = this.ctx.store.listTasks(row.id);
    if (row.open) this.settleUnwaitedJobs(row, rows);
    const build = new ActiveBuild(row, rows);
    build.cancelling = isCancelRequested(row);
    this.builds.set(row.id, build);
    for (const state of build.tasks.values()) {
      if (state.row.status === 'queued') build.ready.push(state.plan.name);
    }
    if (build.cancelling) return;
    // From here on releases and skips follow each task's end; this is the only full scan.
    this.ctx.store.transaction(() => {
      for (const state of build.blocked()) {
        this.setTask(build, state, {
          status: 'skipped',
          finishedAt: now(),
          error: 'a task it needs did not succeed',
        });
      }
      for (const state of build.releasable()) {
        this.setTask(build, state, { status: 'queued' });
        build.ready.push(state.plan.name);
      }
    });
  }

  /** One transaction for the whole pass: every dispatch of this turn commits together. */
  private pass(): void {
    try {
      this.ctx.store.transaction(() => this.dispatchReady());
    } catch (err) {
      this.toExecute.length = 0;
      throw err;
    }
    for (const start of this.toExecute.splice(0)) start();
  }

  /**
   * Hands the free slots out round-robin: each round gives every build with ready work at most
   * one, in scanOrder(), until the slots or the work run out, so a pass with several free slots
   * shares them (compile sessions and plan builds alike) instead of serving the first build
   * first. A build's queue is scanned on from where its last round stopped: a task skipped
   * (no matching agent) cannot fit later in the same pass, since slots only fill. Cached
   * results need no slot: once the slots are gone, one more round serves those still queued.
   */
  private dispatchReady(): void {
    const agents = this.ctx.pool.ready();
    let free = agents.reduce((n, a) => n + a.freeSlots, 0);
    const builds = this.scanOrder();
    for (const build of builds) {
      if (build.row.status !== 'queued') continue;
      this.ctx.store.setBuildStatus(build.id, 'running', { startedAt: now() });
      build.row = { ...build.row, status: 'running', startedAt: now() };
      this.emitBuild(build);
    }
    const resumeAt = new Map<ActiveBuild, number>();
    let round = builds;
    let cacheRound = false;
    while (round.length > 0) {
      const next: ActiveBuild[] = [];
      for (const build of round) {
        if (free <= 0 && !this.ctx.taskCache) break;
        let dispatched = false;
        let more = false;
        const at = build.ready.scan((name) => {
          if (dispatched) {
            more = true;
            return 'stop';
          }
          const state = build.tasks.get(name);
          if (!state || state.row.status !== 'queued') return 'take';
          // A cached result needs no slot: served even while every agent is busy (or none is).
          if (this.servedFromCache(build, state)) return 'take';
          if (free <= 0) return 'stop';
          const agent = pickAgent(agents, state.plan.requires, state.job?.spec.toolchain);
          if (!agent) return 'skip';
          try {
            this.dispatch(build, state, agent);
          } catch (err) {
            // Nothing of this dispatch was recorded (its savepoint rolled back); try again later.
            this.ctx.log.error({ err, build: build.id, task: name }, 'could not record a dispatch');
            return 'stop';
          }
          free--;
          this.lastServed = build.id;
          dispatched = true;
          return 'take';
        }, resumeAt.get(build));
        resumeAt.set(build, at);
        if (more) next.push(build);
      }
      if (free > 0) round = next;
      else if (this.ctx.taskCache && !cacheRound) {
        cacheRound = true;
        round = next;
      } else round = [];
    }
    for (const build of builds) {
      build.ready.compact();
      this.maybeFinish(build);
    }
  }

  /** The builds, oldest first, but starting after the one that got the last slot. */
  private scanOrder(): ActiveBuild[] {
    const builds = [...this.builds.values()];
    const at = builds.findIndex((b) => b.id === this.lastServed);
    return [...builds.slice(at + 1), ...builds.slice(0, at + 1)];
  }

  /** A `cache: true` task looked up (once): true when a cached result made it succeed. */
  private servedFromCache(build: ActiveBuild, state: TaskState): boolean {
    const found = this.ctx.taskCache?.lookup(build, state);
    if (found === undefined) return false;
    if (!found.hit) {
      this.setTask(build, state, found.changes);
      return false;
    }
    const id = this.ctx.store.appendLog(found.log);
    this.setTask(build, state, found.changes);
    this.releaseDependents(build, state);
    const { taskName: task, ...chunk } = found.log;
    this.ctx.events.emit('log', { ...chunk, id, task });
    return true;
  }

  private dispatch(build: ActiveBuild, state: TaskState, connection: SchedulerAgent): void {
    const number = state.row.attempts + 1;
    const flight = this.startFlight(
      build,
      state,
      connection,
      number,
      newAgentTaskId(build.row, state.plan.name, number),
    );
    // Sent to the agent once the pass's transaction has committed the attempt.
    this.toExecute.push(() => void this.execute(flight, connection));
  }

  /** Records attempt `number` of the task as running on this agent, and tracks it in flight. */
  private startFlight(
    build: ActiveBuild,
    state: TaskState,
    connection: SchedulerAgent,
    number: number,
    agentTaskId: string,
  ): InFlight {
    const startedAt = now();
    clearTimeout(state.job?.queueTimer);
    const attempt = this.ctx.store.transaction(() => {
      const created = this.ctx.store.createAttempt({
        buildId: build.id,
        taskName: state.plan.name,
        number,
        agent: connection.name,
        agentTaskId,
        status: 'running',
        startedAt,
      });
      this.setTask(build, state, {
        status: 'running',
        attempts: number,
        agent: connection.name,
        startedAt,
        finishedAt: null,
        exitCode: null,
        error: null,
      });
      return created;
    });
    const flight: InFlight = {
      attempt,
      build,
      task: state,
      state: 'attached',
      lostTimer: undefined,
      connection,
      cancelRequested: false,
    };
    this.inFlight.set(agentTaskId, flight);
    build.inFlight++;
    connection.noteBusy(1);
    return flight;
  }

  private async execute(flight: InFlight, connection: SchedulerAgent): Promise<void> {
    const client = connection.client;
    if (!client) {
      this.detach(flight);
      return;
    }
    const { plan } = flight.task;
    try {
      // The values exist here and in the start request only: never in a row or an event.
      const secretEnv = this.secretEnv(flight);
      const inputs = inputsOf(flight.build, flight.task);
      if (inputs.length > 0) {
        await client.putBlobs(
          [...new Map(inputs.map((f) => [f.sha256, f])).values()].map((f) => ({
            sha256: f.sha256,
            size: f.size,
            source: { file: this.ctx.blobs.pathOf(f.sha256) },
          })),
        );
      }
      const remote = await client
        .startTask(
          {
            taskId: flight.attempt.agentTaskId,
            extension: plan.extension,
            operation: plan.operation,
            input: plan.input,
            inputs: inputs.map(({ path, sha256, mode }) => ({ path, sha256, mode })),
            outputs: plan.outputs,
            env: secretEnv === undefined ? plan.env : { ...plan.env, ...secretEnv },
            ...(plan.timeoutMs === undefined ? {} : { timeoutMs: plan.timeoutMs }),
          },
          (chunk) => this.onOutput(flight, chunk),
        )
        .catch((err: unknown) => {
          const e = toMusterError(err);
          if (e.code === 'TASK_EXISTS') return undefined;
          throw e;
        });
      if (remote === undefined) {
        // The id is this dispatch's own (a nonce made for it), so the task the agent has under
        // it is this attempt, from a start whose answer never reached us: follow it. If the
        // agent no longer has it, the attempt is lost and the task retried under a new id.
        this.ctx.log.warn(
          { build: flight.build.id, task: plan.name, taskId: flight.attempt.agentTaskId },
          'the agent already has this attempt: following it instead of starting it',
        );
        await this.follow(flight, client);
        return;
      }
      await this.complete(flight, client, await remote.result);
    } catch (err) {
      this.settleError(flight, err);
    }
  }

  /**
   * A timer's work: nobody awaits it either, so a store exception is logged (the task stays as
   * it was; a restart, a cancel or the session's end settles it), not left to end the process.
   */
  private inTimer(what: string, fields: Record<string, unknown>, work: () => void): void {
    try {
      work();
    } catch (err) {
      this.ctx.log.error({ err, ...fields }, what);
    }
  }

  /**
   * The end of execute() and follow(), which nobody awaits: recording the failure can itself
   * throw (the store), and that must be logged, not left to end the process as an unhandled
   * rejection.
   */
  private settleError(flight: InFlight, err: unknown): void {
    try {
      this.onExecuteError(flight, toMusterError(err));
    } catch (inner) {
      this.ctx.log.error(
        {
          err: inner,
          cause: toMusterError(err).message,
          build: flight.build.id,
          task: flight.task.plan.name,
          taskId: flight.attempt.agentTaskId,
        },
        'recording the end of an attempt failed',
      );
      this.abandonJob(flight.build, flight.task, 'failed');
    }
  }

  private onExecuteError(flight: InFlight, err: MusterError): void {
    if (this.stopped || !this.inFlight.has(flight.attempt.agentTaskId)) return;
    // LEASE_NOT_HELD: another coordinator of the cluster took the agent; the task never started.
    if (
      err.code === 'CONNECTION_CLOSED' ||
      err.code === 'REQUEST_TIMEOUT' ||
      err.code === 'LEASE_NOT_HELD'
    ) {
      this.detach(flight);
      return;
    }
    // From attaching: the agent forgot the attempt (released, expired or restarted) before its
    // result reached us. Not the task's failure: it is retried under a new id.
    if (err.code === 'TASK_NOT_FOUND') {
      this.finishFlight(
        flight,
        'lost',
        { status: 'lost', durationMs: 0 },
        `agent ${flight.attempt.agent} no longer knows the attempt`,
      );
      return;
    }
    this.finishFlight(
      flight,
      'failed',
      { status: 'failed', error: err.toWire(), durationMs: 0 },
      err.message,
    );
  }

  private detach(flight: InFlight): void {
    if (flight.state === 'attached') {
      flight.connection?.noteBusy(-1);
      flight.state = 'detached';
      flight.connection = undefined;
    }
    this.armLost(flight);
  }

  private armLost(flight: InFlight): void {
    clearTimeout(flight.lostTimer);
    if (this.stopped) return;
    const lose = (): void => {
      if (this.stopped) return;
      if (flight.state !== 'detached' || !this.inFlight.has(flight.attempt.agentTaskId)) return;
      this.ctx.log.warn(
        { build: flight.build.id, task: flight.task.plan.name, agent: flight.attempt.agent },
        'attempt lost: its agent did not come back in time',
      );
      this.finishFlight(
        flight,
        'lost',
        { status: 'lost', durationMs: 0 },
        `agent ${flight.attempt.agent} was lost while the task ran`,
      );
    };
    // A compile job's client compiles it itself at once: no grace (compile-jobs.ts).
    if (flight.task.job) {
      try {
        lose();
      } catch (err) {
        this.abandonJob(flight.build, flight.task, 'lost', err, 'recording a lost job failed');
      }
      return;
    }
    const fields = { build: flight.build.id, task: flight.task.plan.name };
    flight.lostTimer = setTimeout(
      () => this.inTimer('recording a lost attempt failed', fields, lose),
      this.ctx.agentLossGraceMs,
    );
    flight.lostTimer.unref();
  }

  private async reattach(connection: SchedulerAgent): Promise<void> {
    const client = connection.client;
    if (!client) return;
    const onAgent = new Map((await client.listTasks()).map((t) => [t.taskId, t]));
    if (this.stopped) return;
    // As one batch: an attempt found lost here is retried by the pass after it, not at once, so
    // an orphan of its task on this agent is adopted instead of being cancelled as a duplicate.
    this.batching = true;
    try {
      this.reattachFlights(connection, client, onAgent);
      for (const info of onAgent.values()) {
        if (this.inFlight.has(info.taskId)) continue;
        try {
          this.settleUnfollowed(connection, client, info);
        } catch (err) {
          // Nothing of it was recorded (its transaction rolled back); the next connect tries again.
          this.ctx.log.warn({ err, agent: connection.name, taskId: info.taskId }, 'adopt failed');
        }
      }
    } finally {
      this.batching = false;
    }
  }

  /** A task on the agent that this scheduler does not follow: stale, orphan or not ours. */
  private settleUnfollowed(
    connection: SchedulerAgent,
    client: SchedulerClient,
    info: TaskInfo,
  ): void {
    const attempt = this.ctx.store.getAttemptByAgentTaskId(info.taskId);
    if (attempt?.status === 'running') return;
    if (attempt === undefined) {
      const id = parseAgentTaskId(info.taskId);
      if (id === undefined) return; // not a scheduler's id
      if (this.adoptable(id)) {
        this.adopt(connection, client, info.taskId, id);
        return;
      }
      // A build only another coordinator of the cluster knows (a dead backup's, whose history
      // may still be handed back): left to finish; the agent forgets it after its task grace.
      const build = this.ctx.store.getBuild(id.buildId);
      if (build === undefined || !isOfBuild(id, build)) return;
    }
    // Stale (ours, no longer run: lost, cancelled, finished) or a duplicate of a task that runs
    // or is settled here: never two live attempts of one task.
    if (info.state === 'running')
      void client
        .cancelTask(info.taskId)
        .catch(this.agentCallFailed('cancel', connection.name, info.taskId));
    // A finished one is released like any result: once a backup has it (deferRelease).
    else this.release(client, connection.name, info.taskId);
  }

  /** An orphan of a task still to run here, with no attempt in flight: this scheduler's to follow. */
  private adoptable(id: AgentTaskId): boolean {
    const build = this.builds.get(id.buildId);
    const state = build?.tasks.get(id.task);
    if (!build || !state || build.cancelling || !isOfBuild(id, build.row)) return false;
    if (state.row.status !== 'pending' && state.row.status !== 'queued') return false;
    for (const flight of this.inFlight.values()) if (flight.task === state) return false;
    return true;
  }

  /** Records an orphan as its task's next attempt, on this agent, and follows it. */
  private adopt(
    connection: SchedulerAgent,
    client: SchedulerClient,
    agentTaskId: string,
    id: AgentTaskId,
  ): void {
    const build = this.builds.get(id.buildId);
    const state = build?.tasks.get(id.task);
    if (!build || !state) return;
    // Its own number when free, else the next: numbers only order a task's attempts here.
    const number = Math.max(id.attempt, state.row.attempts + 1);
    const flight = this.startFlight(build, state, connection, number, agentTaskId);
    this.ctx.log.info(
      { build: build.id, task: state.plan.name, attempt: number, agent: connection.name },
      'adopted an attempt this coordinator had not recorded',
    );
    void this.follow(flight, client);
  }

  /** Detached attempts of this agent: followed again, or lost if the agent no longer has them. */
  private reattachFlights(
    connection: SchedulerAgent,
    client: SchedulerClient,
    onAgent: Map<string, TaskInfo>,
  ): void {
    for (const flight of [...this.inFlight.values()]) {
      if (flight.attempt.agent !== connection.name || flight.state !== 'detached') continue;
      if (!onAgent.has(flight.attempt.agentTaskId)) {
        this.finishFlight(
          flight,
          'lost',
          { status: 'lost', durationMs: 0 },
          `agent ${connection.name} no longer knows the attempt (it restarted, or released it)`,
        );
        continue;
      }
      clearTimeout(flight.lostTimer);
      flight.state = 'attached';
      flight.connection = connection;
      connection.noteBusy(1);
      if (flight.cancelRequested)
        void client
          .cancelTask(flight.attempt.agentTaskId)
          .catch(this.agentCallFailed('cancel', connection.name, flight.attempt.agentTaskId));
      void this.follow(flight, client);
    }
  }

  /**
   * The values of the task's secrets, and its mask made of them; undefined when it names none.
   * Throws SECRET_NOT_FOUND or SECRET_UNREADABLE (the attempt fails, naming the secret).
   */
  private secretEnv(flight: InFlight): Record<string, string> | undefined {
    const names = flight.task.plan.secrets ?? [];
    if (names.length === 0) return undefined;
    if (this.ctx.secrets === undefined)
      throw new MusterError('SECRET_UNREADABLE', 'this coordinator cannot read secrets');
    const values = this.ctx.secrets.values(names);
    flight.mask = new OutputMask(Object.values(values));
    return values;
  }

  /**
   * A re-attached attempt's mask (after a restart or a takeover). A secret that can no longer be
   * read (deleted since the dispatch) cannot be masked: its output is then not kept at all.
   */
  private remask(flight: InFlight): void {
    if (flight.mask !== undefined) return;
    try {
      this.secretEnv(flight);
    } catch (err) {
      this.ctx.log.warn(
        { build: flight.build.id, task: flight.task.plan.name, err: toMusterError(err) },
        "a re-attached task's secrets cannot be read to mask them: its output is not kept",
      );
      flight.mask = OutputMask.withholding();
    }
  }

  private async follow(flight: InFlight, client: SchedulerClient): Promise<void> {
    this.remask(flight);
    try {
      const remote = await client.attachTask(
        flight.attempt.agentTaskId,
        flight.attempt.nextSeq,
        (chunk) => this.onOutput(flight, chunk),
      );
      await this.complete(flight, client, await remote.result);
    } catch (err) {
      this.settleError(flight, err);
    }
  }

  private onOutput(flight: InFlight, chunk: OutputChunk): void {
    // A stopped scheduler records nothing more: the next one re-attaches from nextSeq.
    if (this.stopped || chunk.seq < flight.attempt.nextSeq) return; // or replayed twice
    // Masked before anything is stored or evented (bytes that may begin a value wait).
    const data = flight.mask ? flight.mask.push(chunk.stream, chunk.data) : chunk.data;
    const at = now();
    const id = this.ctx.store.transaction(() => {
      const logId = data.length === 0 ? undefined : this.appendLog(flight, chunk.stream, data, at);
      this.ctx.store.setAttemptNextSeq(flight.attempt.id, chunk.seq + 1);
      return logId;
    });
    flight.attempt = { ...flight.attempt, nextSeq: chunk.seq + 1 };
    if (id !== undefined) this.emitLog(flight, id, chunk.stream, data, at);
  }

  /** What a mask kept back at the end of the task's output (it began no value after all). */
  private flushMask(flight: InFlight): void {
    for (const { stream, data } of flight.mask?.flush() ?? []) {
      const at = now();
      this.emitLog(flight, this.appendLog(flight, stream, data, at), stream, data, at);
    }
  }

  private appendLog(flight: InFlight, stream: OutputChunk['stream'], data: Buffer, at: string) {
    return this.ctx.store.appendLog({
      buildId: flight.build.id,
      taskName: flight.task.plan.name,
      attempt: flight.attempt.number,
      stream,
      data,
      at,
    });
  }

  private emitLog(
    flight: InFlight,
    id: number,
    stream: OutputChunk['stream'],
    data: Buffer,
    at: string,
  ): void {
    this.ctx.events.emit('log', {
      buildId: flight.build.id,
      id,
      task: flight.task.plan.name,
      attempt: flight.attempt.number,
      stream,
      data,
      at,
    });
  }

  private async complete(
    flight: InFlight,
    client: SchedulerClient,
    reported: TaskResult,
  ): Promise<void> {
    if (this.stopped || !this.inFlight.has(flight.attempt.agentTaskId)) return;
    this.flushMask(flight);
    // The one place an agent's result is accepted: its paths are checked before anything of it
    // is fetched or stored.
    const { result, refused } = acceptResult(flight.task.plan, reported);
    if (refused) {
      this.ctx.log.warn(
        {
          build: flight.build.id,
          task: flight.task.plan.name,
          agent: flight.attempt.agent,
          err: refused,
        },
        'an agent reported outputs the task did not declare',
      );
    }
    if (result.status === 'succeeded') {
      for (const output of result.outputs ?? []) {
        // `missing` touches a blob already there, so the blob sweep keeps it while this result
        // is recorded (it may be an old, so far unreferenced, upload of the same content).
        if ((await this.ctx.blobs.missing([output.sha256])).length > 0) {
          await client.getBlob(output.sha256, this.ctx.blobs.pathOf(output.sha256));
        }
      }
    }
    const status: Exclude<AttemptStatus, 'running'> = result.status;
    const detail = resultDetail(result);
    const refusedToolchain = result.error?.code;
    if (
      flight.task.job &&
      (refusedToolchain === 'TOOLCHAIN_INCOMPATIBLE' || refusedToolchain === 'TOOLCHAIN_NOT_FOUND')
    ) {
      flight.connection?.refuseToolchain?.(flight.task.job.spec.toolchain);
    }
    // Results that arrive together (one read from an agent) are recorded in one transaction:
    // a commit per task was most of the coordinator's time at thousands of tasks a second.
    this.finishing.push({
      flight,
      finish: () => this.finishFlight(flight, status, result, detail),
    });
    if (this.finishing.length === 1) queueMicrotask(() => this.flushFinishing());
    this.release(client, flight.attempt.agent, flight.attempt.agentTaskId);
  }

  /** Lets the agent forget a finished task: at once, or when ctx.deferRelease says. */
  private release(client: SchedulerClient, agent: string, taskId: string): void {
    const release = (): void => {
      void client.releaseTask(taskId).catch(this.agentCallFailed('release', agent, taskId));
    };
    if (this.ctx.deferRelease) this.ctx.deferRelease(release);
    else release();
  }

  /**
   * A cancel or release the agent did not take. Over a connection that closed it is asked again
   * (the close itself is logged by the pool): the re-attach after the reconnect cancels what still
   * runs and releases what has finished. Anything else (no answer in time, an error answer) is
   * worth a warning: calls are per attempt, so an agent cannot repeat it at will.
   */
  private agentCallFailed(
    call: 'cancel' | 'release',
    agent: string,
    taskId: string,
  ): (err: unknown) => void {
    return (err) => {
      const error = toMusterError(err);
      const fields = { err: error, agent, taskId };
      if (error.code === 'CONNECTION_CLOSED') {
        this.ctx.log.debug(fields, `the ${call} of a task did not reach the agent`);
      } else this.ctx.log.warn(fields, `the ${call} of a task failed on the agent`);
    };
  }

  private flushFinishing(): void {
    const batch = this.finishing.splice(0);
    if (batch.length === 0) return;
    this.batching = true;
    try {
      this.ctx.store.transaction(() => {
        for (const { finish } of batch) finish();
      });
    } catch (err) {
      this.ctx.log.error({ err }, 'recording finished attempts failed');
      for (const { flight } of batch) this.abandonJob(flight.build, flight.task, 'failed');
    } finally {
      this.batching = false;
    }
    this.schedule();
  }

  /** Records the end of an attempt and what it means for its task and build. */
  private finishFlight(
    flight: InFlight,
    status: Exclude<AttemptStatus, 'running'>,
    result: TaskResult,
    detail: string | null,
  ): void {
    const key = flight.attempt.agentTaskId;
    if (this.stopped || !this.inFlight.delete(key)) return;
    // An error text may echo the task's environment.
    if (flight.mask && detail !== null) detail = flight.mask.text(detail);
    flight.build.inFlight--;
    clearTimeout(flight.lostTimer);
    if (flight.state === 'attached') flight.connection?.noteBusy(-1);
    const { build, task } = flight;
    const at = now();
    const exitCode = result.exitCode ?? null;
    if (task.job) task.job.attempt = { status, result };
    const lossRetries = task.job ? 0 : (this.ctx.lossRetries ?? 3);
    this.ctx.store.transaction(() => {
      this.ctx.store.finishAttempt(flight.attempt.id, status, {
        exitCode,
        error: detail,
        finishedAt: at,
      });
      if (this.superseded(flight, status)) return;
      if (flight.cancelRequested || build.cancelling) {
        this.setTask(build, task, {
          status: 'cancelled',
          finishedAt: at,
          exitCode,
          error: 'build cancelled',
        });
        return;
      }
      if (status === 'succeeded') {
        this.setTask(build, task, {
          status: 'succeeded',
          finishedAt: at,
          exitCode,
          outputs: result.outputs ?? [],
          error: null,
        });
        this.ctx.taskCache?.remember(build, task, result.outputs ?? []);
        this.releaseDependents(build, task);
        return;
      }
      const attemptsAllowed = 1 + task.plan.retries + (status === 'lost' ? lossRetries : 0);
      if (task.row.attempts < attemptsAllowed) {
        this.ctx.log.info(
          { build: build.id, task: task.plan.name, status, attempt: task.row.attempts },
          'retrying task',
        );
        this.setTask(build, task, { status: 'queued', exitCode, error: detail });
        build.ready.push(task.plan.name);
        return;
      }
      this.setTask(build, task, { status: 'failed', finishedAt: at, exitCode, error: detail });
      for (const downstream of build.downstreamOf(task.plan.name)) {
        this.setTask(build, downstream, {
          status: 'skipped',
          finishedAt: at,
          error: `${task.plan.name} failed`,
        });
      }
    });
    this.maybeFinish(build);
    if (!this.batching) this.schedule();
  }

  /**
   * Whether the end of this attempt leaves its task as it is: the task already ended (another
   * attempt of it succeeded), or a later attempt of it decides (this one did not succeed). Only
   * after a failback can a task have two attempts in flight: one its primary started just before
   * it died, which never reached the backup, and the backup's own (numbered after it by the
   * merge). Without this, the stale one's loss reopened or re-queued a task that ran.
   */
  private superseded(flight: InFlight, status: Exclude<AttemptStatus, 'running'>): boolean {
    const row = flight.task.row;
    return (
      isTerminal(row.status) || (status !== 'succeeded' && flight.attempt.number < row.attempts)
    );
  }

  /** Queues the tasks that waited only for this one, which succeeded. */
  private releaseDependents(build: ActiveBuild, state: TaskState): void {
    for (const released of build.noteSucceeded(state.plan.name)) {
      this.setTask(build, released, { status: 'queued' });
      build.ready.push(released.plan.name);
    }
  }

  private maybeFinish(build: ActiveBuild): void {
    if (!this.builds.has(build.id) || build.inFlight > 0 || !build.finished) return;
    const tasks = [...build.tasks.values()].map((s) => s.row);
    const { status, error } = buildOutcome(tasks, build.cancelling);
    const finishedAt = now();
    this.ctx.store.setBuildStatus(build.id, status, { finishedAt, error });
    build.row = { ...build.row, status, finishedAt, error };
    this.builds.delete(build.id);
    this.emitBuild(build);
    this.ctx.log.info({ build: build.id, status }, 'build finished');
  }

  private setTask(build: ActiveBuild, state: TaskState, changes: Partial<TaskRow>): void {
    this.ctx.store.updateTask(build.id, state.plan.name, changes);
    build.replace(state, { ...state.row, ...changes });
    if (this.ctx.events.listenerCount > 0) {
      this.ctx.events.emit('task', { buildId: build.id, row: state.row, plan: state.plan });
    }
    if (state.job && isTerminal(state.row.status)) this.endJob(build, state, state.job);
  }

  // ---- compile jobs (compile-jobs.ts) -------------------------------------------------------

  /**
   * Appends a remote compile job to an open build and runs it: the handle's `ended` settles when
   * it ends. It is not started (its row settled as skipped at once) when no ready agent has its
   * toolchain, or when the session already has jobQueueCap() of them queued or running; and when
   * it found no slot within `maxQueueMs`. COMPILE_SESSION_CLOSED / NOT_FOUND from the store.
   */
  addJob(buildId: number, job: NewCompileJob): JobHandle {
    const build = this.builds.get(buildId);
    const agents = this.stopped ? [] : this.ctx.pool.ready();
    // The ready agents' slots: those free, and those our attempts fill.
    const slots = agents.reduce((n, a) => n + a.freeSlots, 0) + this.inFlight.size;
    const refusal: [JobReason, string] | undefined = !agents.some((a) =>
      providesToolchain(a, job.spec.toolchain),
    )
      ? ['toolchain-not-on-agents', 'not started: no ready agent has its toolchain']
      : build === undefined
        ? ['no-agent-slot', 'not started: the session is not scheduled here']
        : build.liveJobs().length >= jobQueueCap(slots)
          ? ['queue-full', 'not started: the session has as many jobs waiting as it may']
          : undefined;
    if (refusal !== undefined || build === undefined) {
      const [reason, error] = refusal ?? ['no-agent-slot', 'not started'];
      const row = this.ctx.store.appendJobTask(buildId, {
        label: job.label,
        // Never run: its arguments are not kept, only the toolchain it asked for.
        spec: JSON.stringify({ toolchain: job.spec.toolchain }),
        status: 'skipped',
        error,
        fallback: reason,
      });
      const end = { status: 'not-started', reason, row, result: undefined } as const;
      return { task: row.name, ended: Promise.resolve(end), cancel: () => {} };
    }
    const spec = JSON.stringify(job.spec);
    const row = this.ctx.store.appendJobTask(buildId, { label: job.label, spec, status: 'queued' });
    let resolve!: (end: JobEnd) => void;
    const ended = new Promise<JobEnd>((r) => (resolve = r));
    const jobState: JobState = {
      spec: job.spec,
      reason: null,
      attempt: undefined,
      queueTimer: undefined,
      end: resolve,
    };
    const state = build.addJob(row, jobPlanTask(row.name, job.spec), jobState);
    build.ready.push(row.name);
    this.schedule();
    if (state.row.status === 'queued') {
      // Not unref'd: a client waits for it (stop() clears it).
      jobState.queueTimer = setTimeout(() => {
        try {
          this.notStarted(build, state);
        } catch (err) {
          this.abandonJob(build, state, 'not-started', err, 'recording a job not started failed');
        }
      }, job.maxQueueMs);
    }
    return {
      task: row.name,
      ended,
      cancel: () => this.cancelJob(build, state, 'its client went away'),
    };
  }

  /** A job still queued after its maxQueueMs: out of the queue, not started. */
  private notStarted(build: ActiveBuild, state: TaskState): void {
    if (this.stopped || !state.job || state.row.status !== 'queued') return;
    state.job.reason = 'no-agent-slot';
    this.ctx.store.transaction(() =>
      this.setTask(build, state, {
        status: 'skipped',
        finishedAt: now(),
        error: 'not started: no agent slot was free in time',
      }),
    );
    this.maybeFinish(build);
  }

  /** Ends a job nobody will wait for: queued, at once; running, on its agent. */
  private cancelJob(build: ActiveBuild, state: TaskState, why: string): void {
    if (this.stopped || !state.job || isTerminal(state.row.status)) return;
    if (state.row.status === 'queued' || state.row.status === 'pending') {
      this.ctx.store.transaction(() =>
        this.setTask(build, state, { status: 'cancelled', finishedAt: now(), error: why }),
      );
      this.maybeFinish(build);
      return;
    }
    for (const flight of [...this.inFlight.values()]) {
      if (flight.task === state) this.cancelFlight(flight, why);
    }
  }

  /** A job's task ended: its waiter gets the end, and the build forgets it. */
  private endJob(build: ActiveBuild, state: TaskState, job: JobState): void {
    clearTimeout(job.queueTimer);
    job.end(jobEnd(state.row, job));
    build.dropJob(state);
  }

  /**
   * Recording a job's end failed (the store threw): its client is answered all the same, since
   * it compiles the job itself, instead of waiting for its HTTP timeout; the build forgets the
   * job. The row stays as the store has it: the next scheduler that loads the build settles it
   * (settleUnwaitedJobs). Nothing for a plan task, or a job that already ended. With `err`, the
   * failure is logged here (else the caller logged it).
   */
  private abandonJob(
    build: ActiveBuild,
    state: TaskState,
    status: 'not-started' | 'lost' | 'failed',
    err?: unknown,
    what?: string,
  ): void {
    const job = state.job;
    if (err !== undefined)
      this.ctx.log.error({ err, build: build.id, task: state.plan.name }, what ?? 'job failed');
    if (!job || isTerminal(state.row.status) || build.tasks.get(state.plan.name) !== state) return;
    for (const [key, flight] of this.inFlight) {
      if (flight.task !== state) continue;
      this.inFlight.delete(key);
      build.inFlight--;
      clearTimeout(flight.lostTimer);
      if (flight.state === 'attached') flight.connection?.noteBusy(-1);
    }
    const reason: JobReason | null =
      status === 'not-started'
        ? (job.reason ?? 'no-agent-slot')
        : status === 'lost'
          ? 'agent-lost'
          : null;
    job.reason = reason;
    const error = 'the coordinator could not record how this job ended';
    build.replace(state, {
      ...state.row,
      status: status === 'not-started' ? 'skipped' : 'failed',
      finishedAt: now(),
      error,
    });
    clearTimeout(job.queueTimer);
    job.end({
      status,
      reason,
      row: state.row,
      result: status === 'not-started' ? undefined : job.attempt?.result,
    });
    build.dropJob(state);
  }

  /**
   * An open build loaded by a scheduler that just started (a restart, a takeover): its jobs not
   * yet ended had a client waiting on another process, which has given up on them by now. They
   * are settled as cancelled, not run (their running attempts are marked lost by start(), and
   * cancelled on their agents when those connect).
   */
  private settleUnwaitedJobs(row: BuildRow, rows: TaskRow[]): void {
    const planned = new Set(row.plan.tasks.map((t) => t.name));
    const at = now();
    this.ctx.store.transaction(() => {
      for (const [i, task] of rows.entries()) {
        if (planned.has(task.name) || isTerminal(task.status)) continue;
        const changes = {
          status: 'cancelled' as const,
          finishedAt: at,
          error: 'nobody waits for it any more (the coordinator restarted)',
        };
        this.ctx.store.updateTask(row.id, task.name, changes);
        rows[i] = { ...task, ...changes };
      }
    });
  }

  private emitBuild(build: ActiveBuild): void {
    this.ctx.events.emit('build', {
      build: build.row,
      tasks: [...build.tasks.values()].map((s) => s.row),
    });
  }
}

function now(): string {
  return new Date().toISOString();
}
