/**
 * Compile sessions (issue 13): `muster build` opens one, reports the jobs that ran on its
 * machine or came from the cache (batched; also its heartbeat), and closes it with its command's
 * exit code; it may also run jobs on agents (…/jobs: the answer comes when the job ends). Who
 * may: whoever may run builds, on their own session (others cancel it as a build).
 * The session service (compile/sessions.ts) does the work; these check and shape.
 */
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import {
  closeCompileSessionBody,
  compileJobBody,
  compileRecordsBody,
  createCompileSessionBody,
} from '../../api/requests.js';
import type { BuildView } from '../../api/views/builds.js';
import type { CompileJobView, CompileSessionView } from '../../api/views/compile.js';
import { requireBuilder, type ApiContext } from './context.js';
import { parse } from './http-errors.js';
import { noteToolchainUse } from './toolchain-routes.js';
import { buildView } from './views.js';

/**
 * A job's body: its arguments are at most 64 KiB (REMOTE_ARG_BYTES), the rest is paths and
 * variables; the server's own limit (for plans and uploads) is far larger.
 */
export const JOB_BODY_LIMIT = 256 * 1024;

/** Beyond a job's queue wait and timeout, how long its answer may take (fetching the object). */
const JOB_ANSWER_MARGIN_MS = 60_000;

export function registerCompileRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.post('/api/v1/compile-sessions', async (request, reply) => {
    const user = requireBuilder(request, ctx);
    const body = parse(createCompileSessionBody, request.body, 'compile session');
    const { build, capacity } = ctx.compile.open(body, user.name, request.log);
    const view: CompileSessionView = { buildId: build.id, session: build.uid, capacity };
    return reply.code(201).send(view);
  });

  app.post<{ Params: { id: string } }>(
    '/api/v1/compile-sessions/:id/records',
    async (request, reply) => {
      const user = requireBuilder(request, ctx);
      const body = parse(compileRecordsBody, request.body, 'records');
      ctx.compile.record(request.params.id, body.records, user.name);
      return reply.code(204).send();
    },
  );

  app.post<{ Params: { id: string } }>(
    '/api/v1/compile-sessions/:id/jobs',
    { bodyLimit: JOB_BODY_LIMIT },
    async (request, reply) => {
      const user = requireBuilder(request, ctx);
      const body = parse(compileJobBody, request.body, 'job');
      noteToolchainUse(ctx, body.input.toolchain, request.log);
      // The answer waits for the compile: the connection may stay silent that long (its idle
      // timeout is the server's otherwise), and a client that hangs up cancels the job.
      const restore = allowSilence(
        request.raw.socket,
        body.maxQueueMs + body.timeoutMs + JOB_ANSWER_MARGIN_MS,
        ctx.options.idleTimeoutMs,
      );
      const gone = new AbortController();
      const onClose = (): void => {
        if (!reply.raw.writableFinished) gone.abort();
      };
      reply.raw.once('close', onClose);
      try {
        const view: CompileJobView = await ctx.compile.job(
          request.params.id,
          body,
          user.name,
          gone.signal,
        );
        return view;
      } finally {
        reply.raw.off('close', onClose);
        restore();
      }
    },
  );

  app.post<{ Params: { id: string } }>(
    '/api/v1/compile-sessions/:id/close',
    async (request): Promise<BuildView> => {
      const user = requireBuilder(request, ctx);
      const body = parse(closeCompileSessionBody, request.body, 'close');
      const { build, tasks } = ctx.compile.close(request.params.id, body, user.name, request.log);
      return buildView(build, tasks);
    },
  );
}

/**
 * Lets the connection stay silent for `ms` (the server's idle timeout would cut it), and gives
 * it back `idleMs` after. (An injected request has no real socket: nothing to do.)
 */
function allowSilence(socket: Socket | undefined, ms: number, idleMs: number): () => void {
  if (typeof socket?.setTimeout !== 'function') return () => {};
  socket.setTimeout(ms);
  return () => {
    if (!socket.destroyed) socket.setTimeout(idleMs);
  };
}
