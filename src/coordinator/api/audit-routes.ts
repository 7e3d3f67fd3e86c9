/** The audit log (admins only, on a backup too: reading changes nothing), newest first. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { MusterError } from '../../protocol/errors.js';
import type { AuditView } from '../../api/views/audit.js';
import { auditView } from './audit.js';
import { requireUser, type ApiContext } from './context.js';
import { parse } from './http-errors.js';

export const auditQuery = z.object({
  limit: z.coerce.number().int().positive().max(1000).default(100),
  /** The page after one that ended at this id. */
  before: z.coerce.number().int().positive().optional(),
  action: z.string().min(1).max(64).optional(),
  actor: z.string().min(1).max(256).optional(),
});

export function registerAuditRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get('/api/v1/audit', async (request): Promise<AuditView[]> => {
    const user = requireUser(request);
    if (user.role !== 'admin')
      throw new MusterError('FORBIDDEN', `${user.name} is a viewer; the audit log is for admins`);
    const query = parse(auditQuery, request.query, 'query');
    return ctx.store.audit
      .list({
        limit: query.limit,
        ...(query.before === undefined ? {} : { beforeId: query.before }),
        ...(query.action === undefined ? {} : { action: query.action }),
        ...(query.actor === undefined ? {} : { actor: query.actor }),
      })
      .map(auditView);
  });
}
