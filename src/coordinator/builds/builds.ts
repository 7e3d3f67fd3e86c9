/**
 * Builds as the API offers them: submit a plan with its input files (the plan parsed off the
 * event loop, the paths checked, the inputs matched against the plan, the blobs checked, then the
 * build created and handed to the scheduler), cancel, delete (an admin's, once it ended), and
 * read builds, logs and attempts. It
 * answers in rows; the routes (api/build-routes.ts) turn requests into calls and rows into views.
 */
import type { BlobStore } from '../../common/blob-store.js';
import type { BuildFile } from '../../api/plan/types.js';
import type { BuildStatus } from '../../api/status.js';
import { MusterError } from '../../protocol/errors.js';
import { checkRelativePath } from '../../protocol/paths.js';
import type { BlobSweeper } from '../blob-sweeper.js';
import type { BuildControl } from '../engine.js';
import { checkInputsMatch } from '../plan/inputs.js';
import { parsePlanOffThread } from '../plan/parse-off-thread.js';
import type { Secrets } from '../secrets/secrets.js';
import type { Store } from '../store/store.js';
import type { AttemptRow, BuildRow, LogChunk, TaskRow } from '../store/types.js';

/** A build with its tasks: what a build's view is made from. */
export interface BuildWithTasks {
  build: BuildRow;
  tasks: TaskRow[];
}

/** Where a use case says what it did (the request's log, with its request id). */
export interface BuildLog {
  info(fields: object, message: string): void;
}

export interface BuildFilter {
  status?: BuildStatus | undefined;
  limit?: number | undefined;
  before?: number | undefined;
  q?: string | undefined;
}

export interface LogsFilter {
  task?: string | undefined;
  after?: number | undefined;
  limit?: number | undefined;
}

export interface BuildsContext {
  store: Pick<
    Store,
    | 'createBuild'
    | 'getBuild'
    | 'listBuilds'
    | 'listTasks'
    | 'readLogs'
    | 'listAttempts'
    | 'deleteBuild'
    | 'transaction'
  >;
  blobs: Pick<BlobStore, 'missing'>;
  uploads: Pick<BlobSweeper, 'hold' | 'referenced'>;
  /** A plan's secrets must exist when it is submitted (their values are read at dispatch). */
  secrets: Pick<Secrets, 'requireKnown'>;
  /** The scheduler (builds wait in the store while this coordinator does not schedule). */
  scheduler: Pick<BuildControl, 'submit' | 'cancel'>;
  /** Counts each build submitted (metrics). */
  onSubmitted(): void;
}

export class Builds {
  constructor(private readonly ctx: BuildsContext) {}

  /** Checks and creates a build, and hands it to the scheduler. */
  async submit(
    request: { plan: string; files: BuildFile[] },
    user: string,
    log: BuildLog,
  ): Promise<BuildWithTasks> {
    const { store, blobs, uploads } = this.ctx;
    const plan = await parsePlanOffThread(request.plan);
    this.ctx.secrets.requireKnown(plan.tasks.flatMap((t) => t.secrets ?? []));
    const paths = new Set<string>();
    for (const file of request.files) {
      checkRelativePath(file.path, 'input file');
      if (paths.has(file.path))
        throw new MusterError('VALIDATION_FAILED', `input file ${file.path} is listed twice`);
      paths.add(file.path);
    }
    checkInputsMatch(plan, request.files);
    const hashes = request.files.map((f) => f.sha256);
    // No sweep deletes an input between this check and the build row that references it.
    const release = uploads.hold(hashes);
    let build: BuildRow;
    try {
      const missing = await blobs.missing(hashes);
      if (missing.length > 0) {
        throw new MusterError(
          'BLOB_NOT_FOUND',
          `${missing.length} input file(s) were not uploaded first`,
          { missing },
        );
      }
      build = store.createBuild(plan, request.files, user);
      uploads.referenced(hashes);
    } finally {
      release();
    }
    this.ctx.onSubmitted();
    log.info({ build: build.id, tasks: plan.tasks.length, user }, 'build submitted');
    this.ctx.scheduler.submit(build);
    return { build: store.getBuild(build.id) ?? build, tasks: store.listTasks(build.id) };
  }

  /** Asks the scheduler to cancel a build that has not finished; the build as it is then. */
  cancel(id: string, user: string, log: BuildLog): BuildWithTasks {
    const build = this.find(id);
    if (build.status === 'queued' || build.status === 'running') {
      log.info({ build: build.id, user }, 'build cancel requested');
      this.ctx.scheduler.cancel(build.id);
    }
    return this.get(id);
  }

  /**
   * Deletes an ended build with its tasks, attempts and logs (store.deleteBuild: NOT_FOUND,
   * BUILD_NOT_ENDED), calling `record` in the same transaction (the audit row); the build as it
   * was. Its blobs that nothing else lists go at the next blob sweep once they are old.
   */
  delete(id: string, user: string, log: BuildLog, record: (build: BuildRow) => void): BuildRow {
    const { store } = this.ctx;
    const deleted = store.transaction(() => {
      const build = store.deleteBuild(this.find(id).id);
      record(build);
      return build;
    });
    log.info({ build: deleted.id, status: deleted.status, user }, 'build deleted');
    return deleted;
  }

  get(id: string): BuildWithTasks {
    const build = this.find(id);
    return { build, tasks: this.ctx.store.listTasks(build.id) };
  }

  list(filter: BuildFilter): BuildWithTasks[] {
    const { store } = this.ctx;
    return store
      .listBuilds({
        ...(filter.status ? { status: filter.status } : {}),
        ...(filter.limit ? { limit: filter.limit } : {}),
        ...(filter.before ? { beforeId: filter.before } : {}),
        ...(filter.q ? { text: filter.q } : {}),
      })
      .map((build) => ({ build, tasks: store.listTasks(build.id) }));
  }

  /**
   * A page of a build's log (up to 1000 chunks unless told), and where the next page starts. The
   * filter is read once the build is found: a missing build is NOT_FOUND whatever the query.
   */
  logs(id: string, readFilter: () => LogsFilter): { chunks: LogChunk[]; next: number } {
    const build = this.find(id);
    const filter = readFilter();
    const chunks = this.ctx.store.readLogs(build.id, {
      ...(filter.task ? { taskName: filter.task } : {}),
      afterId: filter.after ?? 0,
      limit: filter.limit ?? 1000,
    });
    return { chunks, next: chunks.at(-1)?.id ?? filter.after ?? 0 };
  }

  attempts(id: string): AttemptRow[] {
    return this.ctx.store.listAttempts(this.find(id).id);
  }

  /** The build with this id (as the path gives it), or NOT_FOUND. */
  private find(id: string): BuildRow {
    const build = /^\d+$/.test(id) ? this.ctx.store.getBuild(Number(id)) : undefined;
    if (!build) throw new MusterError('NOT_FOUND', `no build ${id}`);
    return build;
  }
}
