/**
 * Builds: submit a plan with its input files, list, show, cancel, delete (admins; an ended
 * build, with its tasks, attempts and logs: an audit row), read logs and attempts. Each
 * route checks who may call it, parses the request, calls the build service (builds/builds.ts)
 * and shapes its answer as a view.
 */
import type { FastifyInstance } from 'fastify';
import { recordAudit } from './audit.js';
import { requireAdmin, requireBuilder, requireUser, type ApiContext } from './context.js';
import { parse } from './http-errors.js';
import { createBuildBody, listBuildsQuery, logsQuery } from '../../api/requests.js';
import type { AttemptView, BuildSummary, BuildView, LogsView } from '../../api/views/builds.js';
import { buildSummary, buildView } from './views.js';

export function registerBuildRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.post('/api/v1/builds', async (request, reply) => {
    const user = requireBuilder(request, ctx);
    const body = parse(createBuildBody, request.body, 'build');
    const { build, tasks } = await ctx.builds.submit(body, user.name, request.log);
    const view: BuildView = buildView(build, tasks);
    return reply.code(201).send(view);
  });

  app.get('/api/v1/builds', async (request): Promise<BuildSummary[]> => {
    requireUser(request);
    const query = parse(listBuildsQuery, request.query, 'query');
    return ctx.builds.list(query).map(({ build, tasks }) => buildSummary(build, tasks));
  });

  app.get<{ Params: { id: string } }>('/api/v1/builds/:id', async (request): Promise<BuildView> => {
    requireUser(request);
    const { build, tasks } = ctx.builds.get(request.params.id);
    return buildView(build, tasks);
  });

  app.post<{ Params: { id: string } }>(
    '/api/v1/builds/:id/cancel',
    async (request): Promise<BuildView> => {
      const user = requireBuilder(request, ctx);
      const { build, tasks } = ctx.builds.cancel(request.params.id, user.name, request.log);
      return buildView(build, tasks);
    },
  );

  app.delete<{ Params: { id: string } }>('/api/v1/builds/:id', async (request, reply) => {
    const admin = requireAdmin(request, ctx);
    ctx.builds.delete(request.params.id, admin.name, request.log, (build) =>
      recordAudit(ctx, request, 'build.delete', String(build.id), {
        name: build.plan.name ?? null,
        status: build.status,
        createdBy: build.createdBy,
      }),
    );
    return reply.code(204).send();
  });

  app.get<{ Params: { id: string } }>(
    '/api/v1/builds/:id/logs',
    async (request): Promise<LogsView> => {
      requireUser(request);
      const { chunks, next } = ctx.builds.logs(request.params.id, () =>
        parse(logsQuery, request.query, 'query'),
      );
      const view: LogsView = {
        chunks: chunks.map((c) => ({
          id: c.id,
          task: c.taskName,
          attempt: c.attempt,
          stream: c.stream,
          text: c.data.toString('utf8'),
          at: c.at,
        })),
        next,
      };
      return view;
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/builds/:id/attempts',
    async (request): Promise<AttemptView[]> => {
      requireUser(request);
      return ctx.builds.attempts(request.params.id).map((a): AttemptView => ({
        task: a.taskName,
        number: a.number,
        agent: a.agent,
        status: a.status,
        startedAt: a.startedAt,
        finishedAt: a.finishedAt,
        exitCode: a.exitCode,
        error: a.error,
      }));
    },
  );
}
