/**
 * Join tokens (issue 14, agents that dial out): an admin creates one, with the labels the agents
 * that join with it get and whether they work at once; its secret is shown once, in the answer
 * to the create. Listed without secrets; revoked by id. Agents already joined keep working: the
 * token only admits new ones (src/coordinator/pool/outbound-agents.ts).
 */
import type { FastifyInstance } from 'fastify';
import { parseDuration } from '../../common/duration.js';
import { MusterError } from '../../protocol/errors.js';
import { newJoinToken } from '../../protocol/outbound.js';
import { createJoinTokenBody } from '../../api/requests.js';
import type { CreatedJoinTokenView, JoinTokenView } from '../../api/views/agents.js';
import type { JoinTokenRow } from '../store/join-tokens.js';
import { recordAudit } from './audit.js';
import { requireAdmin, type ApiContext } from './context.js';
import { parse } from './http-errors.js';

const DEFAULT_EXPIRY = '24h';

export function registerJoinTokenRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get('/api/v1/join-tokens', async (request): Promise<JoinTokenView[]> => {
    requireAdmin(request, ctx);
    const now = Date.now();
    return ctx.store.joinTokens.list().map((row) => joinTokenView(row, now));
  });

  app.post('/api/v1/join-tokens', async (request, reply) => {
    const user = requireAdmin(request, ctx);
    const body = parse(createJoinTokenBody, request.body, 'join token');
    const expires = body.expires ?? DEFAULT_EXPIRY;
    const expiresAt =
      expires === 'never' ? null : new Date(Date.now() + lifetime(expires)).toISOString();
    const token = newJoinToken();
    const row = ctx.store.transaction(() => {
      const created = ctx.store.joinTokens.create({
        id: token.id,
        secret: token.secret,
        labels: body.labels ?? [],
        autoApprove: body.autoApprove ?? false,
        expiresAt,
        createdBy: user.name,
      });
      if (created === undefined)
        throw new MusterError(
          'CONFLICT',
          'too many join tokens: revoke some (muster agents tokens revoke ID) first',
        );
      // Never the secret.
      recordAudit(ctx, request, 'token.create', created.id, {
        labels: created.labels,
        autoApprove: created.autoApprove,
        expiresAt: created.expiresAt,
      });
      return created;
    });
    const url = ctx.options.advertiseUrl ?? `${request.protocol}://${request.host}`;
    const view: CreatedJoinTokenView = {
      ...joinTokenView(row, Date.now()),
      token: token.token,
      command: `muster agent --connect ${url} --join-token ${token.token}`,
    };
    return reply.code(201).send(view);
  });

  app.delete<{ Params: { id: string } }>('/api/v1/join-tokens/:id', async (request, reply) => {
    requireAdmin(request, ctx);
    const id = request.params.id;
    ctx.store.transaction(() => {
      if (!ctx.store.joinTokens.revoke(id))
        throw new MusterError('NOT_FOUND', `no join token ${id} (see muster agents tokens list)`);
      recordAudit(ctx, request, 'token.revoke', id);
    });
    return reply.code(204).send();
  });
}

/** `expires` as milliseconds: a duration with a unit, above zero. */
function lifetime(expires: string): number {
  let ms: number;
  try {
    ms = parseDuration(expires, 'expires');
  } catch (err) {
    throw new MusterError('VALIDATION_FAILED', (err as Error).message);
  }
  if (ms <= 0) throw new MusterError('VALIDATION_FAILED', 'expires must be above zero (or never)');
  if (!Number.isFinite(new Date(Date.now() + ms).getTime()))
    throw new MusterError('VALIDATION_FAILED', 'expires is too far away: use never');
  return ms;
}

function joinTokenView(row: JoinTokenRow, now: number): JoinTokenView {
  return {
    id: row.id,
    labels: row.labels,
    autoApprove: row.autoApprove,
    expiresAt: row.expiresAt,
    expired: row.expiresAt !== null && Date.parse(row.expiresAt) <= now,
    createdBy: row.createdBy,
    createdAt: row.createdAt,
    uses: row.uses,
  };
}
