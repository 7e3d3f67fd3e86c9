/** Users and roles (admin): list, create, delete. */
import type { FastifyInstance } from 'fastify';
import { MusterError } from '../../protocol/errors.js';
import { hashPassword } from '../auth/passwords.js';
import { requireAdmin, requireUser, type ApiContext } from './context.js';
import { parse } from './http-errors.js';
import { createUserBody } from './schemas.js';

export function registerUserRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get('/api/v1/users', async (request) => {
    // Admins read the list on a backup too (its view-only UI shows it); changes need the primary.
    if (requireUser(request).role !== 'admin')
      throw new MusterError('FORBIDDEN', 'listing users needs an admin');
    return ctx.store
      .listUsers()
      .map((u) => ({ name: u.name, role: u.role, createdAt: u.createdAt }));
  });

  app.post('/api/v1/users', async (request, reply) => {
    requireAdmin(request, ctx);
    const body = parse(createUserBody, request.body, 'user');
    const user = ctx.store.createUser(body.name, body.role, await hashPassword(body.password));
    return reply.code(201).send({ name: user.name, role: user.role, createdAt: user.createdAt });
  });

  app.delete<{ Params: { name: string } }>('/api/v1/users/:name', async (request, reply) => {
    const admin = requireAdmin(request, ctx);
    if (admin.name === request.params.name)
      throw new MusterError('CONFLICT', 'you cannot delete yourself');
    if (!ctx.store.deleteUser(request.params.name))
      throw new MusterError('NOT_FOUND', `no user ${request.params.name}`);
    return reply.code(204).send();
  });
}
