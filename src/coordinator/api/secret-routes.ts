/**
 * Secrets (admins): list names (on a backup too: reading changes nothing), set and delete (on the
 * primary; a backup answers READ_ONLY). No route returns a value: PUT takes it, nothing gives it
 * back. Each change is audited (secret.set, secret.delete) without the value.
 */
import type { FastifyInstance } from 'fastify';
import { setSecretBody } from '../../api/requests.js';
import { secretNameProblem } from '../../api/secret-names.js';
import type { SecretView } from '../../api/views/secrets.js';
import { MusterError } from '../../protocol/errors.js';
import type { SecretSummary } from '../store/secrets.js';
import { recordAudit } from './audit.js';
import { requireAdmin, requireUser, type ApiContext } from './context.js';
import { parse } from './http-errors.js';

const view = (s: SecretSummary): SecretView => ({ name: s.name, setBy: s.setBy, setAt: s.setAt });

function checkName(name: string): string {
  const problem = secretNameProblem(name);
  if (problem !== undefined) throw new MusterError('VALIDATION_FAILED', problem);
  return name;
}

export function registerSecretRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get('/api/v1/secrets', async (request): Promise<SecretView[]> => {
    const user = requireUser(request);
    if (user.role !== 'admin')
      throw new MusterError('FORBIDDEN', `${user.name} is a viewer; secrets are for admins`);
    return ctx.secrets.list().map(view);
  });

  app.put<{ Params: { name: string } }>('/api/v1/secrets/:name', async (request, reply) => {
    const admin = requireAdmin(request, ctx);
    const name = checkName(request.params.name);
    const { value } = parse(setSecretBody, request.body, 'secret');
    const created = ctx.store.transaction(() => {
      const isNew = ctx.secrets.set(name, value, admin.name);
      recordAudit(ctx, request, 'secret.set', name, { created: isNew });
      return isNew;
    });
    request.log.info({ secret: name, created, by: admin.name }, 'secret set');
    const answer: SecretView = view(ctx.secrets.get(name));
    return reply.code(created ? 201 : 200).send(answer);
  });

  app.delete<{ Params: { name: string } }>('/api/v1/secrets/:name', async (request, reply) => {
    const admin = requireAdmin(request, ctx);
    const name = checkName(request.params.name);
    ctx.store.transaction(() => {
      ctx.secrets.delete(name);
      recordAudit(ctx, request, 'secret.delete', name);
    });
    request.log.info({ secret: name, by: admin.name }, 'secret deleted');
    return reply.code(204).send();
  });
}
