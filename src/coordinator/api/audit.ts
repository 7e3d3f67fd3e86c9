/**
 * Recording an administrative change in the audit log (store/audit.ts): one call, made by a route
 * once its change succeeded (inside the change's transaction where the change is one). Who: the
 * request's user; from where: its remote address. Details say what changed (field names and new
 * values) and never carry a password, token, key or secret value.
 */
import type { FastifyRequest } from 'fastify';
import type { AuditView } from '../../api/views/audit.js';
import type { AuditRow } from '../store/audit.js';
import { requireUser, type ApiContext } from './context.js';

/**
 * The actions recorded, each a stable code (docs/security.md lists them with their details). New
 * kinds of change add theirs here.
 */
export type AuditAction =
  | 'user.create'
  | 'user.update'
  | 'user.password'
  | 'user.delete'
  | 'agent.add'
  | 'agent.update'
  | 'agent.remove'
  | 'agent.approve'
  | 'token.create'
  | 'token.revoke'
  | 'setting.set'
  | 'extension.add'
  | 'extension.remove'
  | 'toolchain.remove'
  | 'certificate.replace'
  | 'backup.select'
  | 'backup.remove'
  | 'build.delete'
  | 'builds.retention'
  | 'secret.set'
  | 'secret.delete';

export function recordAudit(
  ctx: Pick<ApiContext, 'store'>,
  request: FastifyRequest,
  action: AuditAction,
  target: string,
  details: Record<string, unknown> = {},
): void {
  const user = requireUser(request);
  ctx.store.audit.record({
    actor: user.name,
    actorKind: 'user',
    ip: request.ip,
    action,
    target,
    details,
  });
}

export function auditView(row: AuditRow): AuditView {
  return {
    id: row.id,
    at: new Date(row.at).toISOString(),
    actor: row.actor,
    actorKind: row.actorKind,
    ip: row.ip,
    action: row.action,
    target: row.target,
    details: row.details,
  };
}
