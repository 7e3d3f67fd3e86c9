/**
 * High availability over the API. Users: GET /backups, PUT /backups/selected, DELETE
 * /backups/NAME (admins, on the primary). Coordinators (/api/v1/ha/…, authenticated by the
 * secret a backup registered with, not by user tokens): registration, heartbeat, snapshot and
 * change stream on a primary; state, history and handback on a backup; blobs on both.
 */
import { createReadStream } from 'node:fs';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { MusterError } from '../../protocol/errors.js';
import { MAX_REPORTED_ERROR } from '../ha/backup-health.js';
import { AUDIT_HANDBACK_PAGE } from '../ha/history-schema.js';
import { sendBlob } from './blob-routes.js';
import { recordAudit } from './audit.js';
import { ANONYMOUS_BODY_LIMIT, requireAdmin, requireUser, type ApiContext } from './context.js';
import { parse } from './http-errors.js';
import type { BackupHa, PrimaryHa } from './ports.js';
import { HTTP_URL } from '../options.js';
import { CACHE_HISTORY_TABLES } from '../store/cache.js';
import { name, selectBackupBody } from '../../api/requests.js';
import type { BackupView } from '../../api/views/backups.js';
import type {
  AuditRowView,
  BackupRegisteredView,
  BackupStateView,
  BuildHistoryView,
  CacheHistoryPageView,
  ChangePageView,
  HandbackTokensView,
  HandbackView,
  HeartbeatView,
  SecretsKeyView,
} from '../../api/views/ha.js';

export const registerBody = z.object({
  name,
  url: z.string().max(2048).regex(HTTP_URL, 'an http(s) URL'),
  fingerprint: z.string().max(200).nullable(),
  // Within the route's body limit (ANONYMOUS_BODY_LIMIT): a chain of a dozen certificates.
  certificate: z
    .string()
    .max(48 * 1024)
    .nullable(),
  secret: z.string().min(32).max(200),
  joinToken: z.string().max(200).optional(),
});

export const changesQuery = z.object({
  stream: z.string().min(1).max(100),
  after: z.coerce.number().int().nonnegative(),
  waitMs: z.coerce.number().int().nonnegative().max(30_000).default(0),
});

/**
 * `pins`: the certificate fingerprints the backup accepts for this primary, comma-separated;
 * `replication`: the error its replication keeps failing with (absent while it works).
 */
export const heartbeatQuery = z.object({
  pins: z.string().max(2000).optional(),
  replication: z.string().max(MAX_REPORTED_ERROR).optional(),
});

export const historyQuery = z.object({
  afterLog: z.coerce.number().int().nonnegative().default(0),
  limit: z.coerce.number().int().positive().max(10_000).default(1000),
});

export const auditHistoryQuery = z.object({
  after: z.coerce.number().int().nonnegative().default(0),
  limit: z.coerce.number().int().positive().max(AUDIT_HANDBACK_PAGE).default(AUDIT_HANDBACK_PAGE),
});

/** A cache history page's query: the cursor is both halves of the last row's, or neither. */
export const cacheHistoryQuery = z
  .object({
    afterAt: z.string().max(64).optional(),
    afterKey: z.string().max(200).optional(),
    limit: z.coerce.number().int().positive().max(1000).default(200),
  })
  .refine((q) => (q.afterAt === undefined) === (q.afterKey === undefined), {
    message: 'afterAt and afterKey go together (the last row of the page before)',
  });

function bearer(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  return header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
}

function backupName(request: FastifyRequest): string | undefined {
  const value = request.headers['x-muster-backup'];
  return typeof value === 'string' ? value : undefined;
}

/** Anyone may register (selecting is the act of trust), with a small body. */
const anonymous = { config: { access: 'public' as const }, bodyLimit: ANONYMOUS_BODY_LIMIT };
/**
 * No user token: each of these routes checks the caller's backup or primary secret itself (none
 * takes a body worth more than the anonymous limit; the body is read before that check).
 */
const peer = { config: { access: 'peer' as const }, bodyLimit: ANONYMOUS_BODY_LIMIT };

export function registerHaRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const primary = (): PrimaryHa => {
    const side = ctx.ha.primary;
    if (!side) {
      const url = ctx.ha.backup?.statusView().url;
      throw new MusterError(
        'READ_ONLY',
        `this coordinator is a backup: backups are listed and selected on the primary${url ? ` (${url})` : ''}`,
      );
    }
    return side;
  };
  const backup = (): BackupHa => {
    const side = ctx.ha.backup;
    if (!side) throw new MusterError('NOT_FOUND', 'this coordinator is not a backup');
    return side;
  };
  const fromBackup = (request: FastifyRequest) =>
    primary().authenticate(backupName(request), bearer(request));
  const fromPrimary = (request: FastifyRequest): BackupHa => {
    const side = backup();
    side.authenticatePrimary(bearer(request));
    return side;
  };

  // ---- users ----------------------------------------------------------------------------------

  app.get('/api/v1/backups', async (request): Promise<BackupView[]> => {
    requireUser(request);
    return primary().list();
  });

  app.put('/api/v1/backups/selected', async (request): Promise<BackupView[]> => {
    const user = requireAdmin(request, ctx);
    const { name } = parse(selectBackupBody, request.body, 'selection');
    const side = primary();
    const before = side.selected()?.name ?? null;
    const list = await side.select(name, user.name);
    if (before !== name)
      recordAudit(ctx, request, 'backup.select', name ?? 'none', { previous: before ?? 'none' });
    return list;
  });

  app.delete<{ Params: { name: string } }>('/api/v1/backups/:name', async (request, reply) => {
    requireAdmin(request, ctx);
    primary().remove(request.params.name);
    recordAudit(ctx, request, 'backup.remove', request.params.name);
    return reply.code(204).send();
  });

  // ---- a backup calling its primary ---------------------------------------------------------

  app.post('/api/v1/ha/register', anonymous, async (request): Promise<BackupRegisteredView> => {
    const body = parse(registerBody, request.body, 'registration');
    return primary().register(body);
  });

  app.get('/api/v1/ha/heartbeat', peer, async (request): Promise<HeartbeatView> => {
    const row = fromBackup(request);
    const { pins, replication } = parse(heartbeatQuery, request.query, 'query');
    return primary().heartbeat(
      row,
      pins === undefined ? undefined : pins.split(',').filter((p) => p !== ''),
      replication,
    );
  });

  app.get('/api/v1/ha/changes', peer, async (request): Promise<ChangePageView> => {
    const row = fromBackup(request);
    const query = parse(changesQuery, request.query, 'query');
    return primary().changes(
      row,
      query.stream,
      query.after,
      query.waitMs,
      () => request.raw.destroyed,
    );
  });

  app.get('/api/v1/ha/snapshot', peer, async (request, reply) => {
    const row = fromBackup(request);
    const snapshot = await primary().snapshot(row);
    const stream = createReadStream(snapshot.file);
    stream.on('close', () => void snapshot.cleanup());
    return reply
      .header('content-type', 'application/vnd.sqlite3')
      .header('x-muster-stream', snapshot.stream)
      .header('x-muster-seq', String(snapshot.seq))
      .send(stream);
  });

  // The selected backup's copy of the secrets key (its rows of them are ciphertext).
  app.get('/api/v1/ha/secrets-key', peer, async (request): Promise<SecretsKeyView> =>
    primary().secretsKey(fromBackup(request)),
  );

  // ---- both directions ----------------------------------------------------------------------

  app.get<{ Params: { sha256: string } }>(
    '/api/v1/ha/blobs/:sha256',
    peer,
    async (request, reply) => {
      if (ctx.ha.primary) ctx.ha.primary.requireSelected(fromBackup(request));
      else fromPrimary(request);
      return sendBlob(ctx, reply, request.params.sha256);
    },
  );

  // ---- the primary calling its backup -------------------------------------------------------

  app.get('/api/v1/ha/state', peer, async (request): Promise<BackupStateView> =>
    fromPrimary(request).stateView(),
  );

  app.post('/api/v1/ha/handback/begin', peer, async (request): Promise<HandbackView> =>
    fromPrimary(request).beginHandback(),
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/ha/history/builds/:id',
    peer,
    async (request): Promise<BuildHistoryView> => {
      const side = fromPrimary(request);
      const takeover = side.takeoverRecord();
      if (!takeover) throw new MusterError('NOT_FOUND', 'this backup has no history to hand back');
      const id = parse(z.coerce.number().int().positive(), request.params.id, 'build id');
      const query = parse(historyQuery, request.query, 'query');
      return ctx.store.replication.exportBuildHistory(
        id,
        Math.max(query.afterLog, takeover.maxLogId),
        query.limit,
      );
    },
  );

  app.get('/api/v1/ha/history/tokens', peer, async (request): Promise<HandbackTokensView> => {
    const side = fromPrimary(request);
    const takeover = side.takeoverRecord();
    return takeover ? ctx.store.replication.exportTokens(takeover.maxTokenId) : [];
  });

  // The audit rows written since the takeover, a page at a time (oldest first, after `after`).
  app.get('/api/v1/ha/history/audit', peer, async (request): Promise<AuditRowView[]> => {
    const side = fromPrimary(request);
    const takeover = side.takeoverRecord();
    if (!takeover) return [];
    const query = parse(auditHistoryQuery, request.query, 'query');
    return ctx.store.audit.exportSince(Date.parse(takeover.at), query.after, query.limit);
  });

  // The compile cache's rows made since the takeover, a table at a time (failback takes them
  // back with what it has kept: cache rows are immutable).
  app.get<{ Params: { table: string } }>(
    '/api/v1/ha/history/cache/:table',
    peer,
    async (request): Promise<CacheHistoryPageView> => {
      const side = fromPrimary(request);
      const takeover = side.takeoverRecord();
      if (!takeover) return { rows: [], next: null };
      const table = parse(z.enum(CACHE_HISTORY_TABLES), request.params.table, 'table');
      const query = parse(cacheHistoryQuery, request.query, 'query');
      const after =
        query.afterAt === undefined || query.afterKey === undefined
          ? undefined
          : { at: query.afterAt, key: query.afterKey };
      return ctx.store.cache.exportSince(table, takeover.at, after, query.limit);
    },
  );

  app.post('/api/v1/ha/handback/done', peer, async (request, reply) => {
    fromPrimary(request).endHandback();
    return reply.code(204).send();
  });
}
