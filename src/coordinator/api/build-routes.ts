/** Builds: submit a plan with its input files, list, show, cancel, read logs and attempts. */
import type { FastifyInstance } from 'fastify';
import { MusterError } from '../../protocol/errors.js';
import { checkRelativePath } from '../../protocol/paths.js';
import { checkInputsMatch } from '../plan/inputs.js';
import { parsePlanOffThread } from '../plan/parse-off-thread.js';
import { requireBuilder, requireUser, type ApiContext } from './context.js';
import { parse } from './http-errors.js';
import { createBuildBody, listBuildsQuery, logsQuery } from '../../api/requests.js';
import type { AttemptView, LogsView } from '../../api/views/builds.js';
import { buildSummary, buildView } from './views.js';

export function registerBuildRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const getBuild = (id: string) => {
    const build = /^\d+$/.test(id) ? ctx.store.getBuild(Number(id)) : undefined;
    if (!build) throw new MusterError('NOT_FOUND', `no build ${id}`);
    return build;
  };

  app.post('/api/v1/builds', async (request, reply) => {
    const user = requireBuilder(request, ctx);
    const body = parse(createBuildBody, request.body, 'build');
    const plan = await parsePlanOffThread(body.plan);
    const paths = new Set<string>();
    for (const file of body.files) {
      checkRelativePath(file.path, 'input file');
      if (paths.has(file.path))
        throw new MusterError('VALIDATION_FAILED', `input file ${file.path} is listed twice`);
      paths.add(file.path);
    }
    checkInputsMatch(plan, body.files);
    const hashes = body.files.map((f) => f.sha256);
    // No sweep deletes an input between this check and the build row that references it.
    const release = ctx.uploads.hold(hashes);
    let build;
    try {
      const missing = await ctx.blobs.missing(hashes);
      if (missing.length > 0) {
        throw new MusterError(
          'BLOB_NOT_FOUND',
          `${missing.length} input file(s) were not uploaded first`,
          { missing },
        );
      }
      build = ctx.store.createBuild(plan, body.files, user.name);
      ctx.uploads.referenced(hashes);
    } finally {
      release();
    }
    ctx.metrics.buildsSubmitted.inc();
    request.log.info(
      { build: build.id, tasks: plan.tasks.length, user: user.name },
      'build submitted',
    );
    ctx.scheduler.submit(build);
    return reply
      .code(201)
      .send(buildView(ctx.store.getBuild(build.id) ?? build, ctx.store.listTasks(build.id)));
  });

  app.get('/api/v1/builds', async (request) => {
    requireUser(request);
    const query = parse(listBuildsQuery, request.query, 'query');
    return ctx.store
      .listBuilds({
        ...(query.status ? { status: query.status } : {}),
        ...(query.limit ? { limit: query.limit } : {}),
        ...(query.before ? { beforeId: query.before } : {}),
        ...(query.q ? { text: query.q } : {}),
      })
      .map((b) => buildSummary(b, ctx.store.listTasks(b.id)));
  });

  app.get<{ Params: { id: string } }>('/api/v1/builds/:id', async (request) => {
    requireUser(request);
    const build = getBuild(request.params.id);
    return buildView(build, ctx.store.listTasks(build.id));
  });

  app.post<{ Params: { id: string } }>('/api/v1/builds/:id/cancel', async (request) => {
    const user = requireBuilder(request, ctx);
    const build = getBuild(request.params.id);
    if (build.status === 'queued' || build.status === 'running') {
      request.log.info({ build: build.id, user: user.name }, 'build cancel requested');
      ctx.scheduler.cancel(build.id);
    }
    const after = getBuild(request.params.id);
    return buildView(after, ctx.store.listTasks(after.id));
  });

  app.get<{ Params: { id: string } }>('/api/v1/builds/:id/logs', async (request) => {
    requireUser(request);
    const build = getBuild(request.params.id);
    const query = parse(logsQuery, request.query, 'query');
    const chunks = ctx.store.readLogs(build.id, {
      ...(query.task ? { taskName: query.task } : {}),
      afterId: query.after ?? 0,
      limit: query.limit ?? 1000,
    });
    const view: LogsView = {
      chunks: chunks.map((c) => ({
        id: c.id,
        task: c.taskName,
        attempt: c.attempt,
        stream: c.stream,
        text: c.data.toString('utf8'),
        at: c.at,
      })),
      next: chunks.at(-1)?.id ?? query.after ?? 0,
    };
    return view;
  });

  app.get<{ Params: { id: string } }>('/api/v1/builds/:id/attempts', async (request) => {
    requireUser(request);
    const build = getBuild(request.params.id);
    return ctx.store.listAttempts(build.id).map((a): AttemptView => ({
      task: a.taskName,
      number: a.number,
      agent: a.agent,
      status: a.status,
      startedAt: a.startedAt,
      finishedAt: a.finishedAt,
      exitCode: a.exitCode,
      error: a.error,
    }));
  });
}
