/**
 * Users and roles: admins list, create, change (role, password) and delete users; anyone changes
 * their own password. The coordinator always keeps at least one admin. A new password ends the
 * user's other sessions and CLI tokens.
 */
import type { FastifyInstance } from 'fastify';
import { MusterError } from '../../protocol/errors.js';
import { verifyPassword } from '../auth/passwords.js';
import type { User } from '../store/types.js';
import { recordAudit } from './audit.js';
import {
  recheckAdmin,
  requireAdmin,
  requirePrimary,
  requireUser,
  type ApiContext,
} from './context.js';
import { parse } from './http-errors.js';
import { changePasswordBody, createUserBody, updateUserBody } from '../../api/requests.js';
import type { UserView } from '../../api/views/users.js';

const view = (u: User): UserView => ({ name: u.name, role: u.role, createdAt: u.createdAt });

export function registerUserRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const existing = (name: string): User => {
    const user = ctx.store.getUser(name);
    if (!user) throw new MusterError('NOT_FOUND', `no user ${name}`);
    return user;
  };
  /** Refuses a change that would leave no admin: `user` stops being one. */
  const keepAnAdmin = (user: User, doing: string): void => {
    if (user.role !== 'admin') return;
    if (ctx.store.listUsers().some((u) => u.role === 'admin' && u.name !== user.name)) return;
    throw new MusterError(
      'LAST_ADMIN',
      `${user.name} is the only admin: make another user an admin before ${doing}`,
    );
  };

  app.get('/api/v1/users', async (request): Promise<UserView[]> => {
    // Admins read the list on a backup too (its view-only UI shows it); changes need the primary.
    if (requireUser(request).role !== 'admin')
      throw new MusterError('FORBIDDEN', 'listing users needs an admin');
    return ctx.store.listUsers().map(view);
  });

  app.post('/api/v1/users', async (request, reply) => {
    requireAdmin(request, ctx);
    const body = parse(createUserBody, request.body, 'user');
    const hash = await ctx.hashPassword(body.password);
    const user = ctx.store.transaction(() => {
      const created = ctx.store.createUser(body.name, body.role, hash);
      recordAudit(ctx, request, 'user.create', created.name, { role: created.role });
      return created;
    });
    request.log.info({ user: user.name, role: user.role }, 'user created');
    const answer: UserView = view(user);
    return reply.code(201).send(answer);
  });

  app.patch<{ Params: { name: string } }>(
    '/api/v1/users/:name',
    async (request): Promise<UserView> => {
      const admin = requireAdmin(request, ctx);
      const body = parse(updateUserBody, request.body, 'user change');
      existing(request.params.name);
      // Hashed before anything changes: the role and the password change together or not at
      // all, against the user as it is at the commit (deleted or demoted meanwhile: seen then).
      const hash = body.password === undefined ? undefined : await ctx.hashPassword(body.password);
      const changed = ctx.store.transaction(() => {
        recheckAdmin(request, ctx);
        const user = existing(request.params.name);
        if (body.role !== undefined && body.role !== user.role) {
          if (body.role !== 'admin') keepAnAdmin(user, 'making it a viewer');
          ctx.store.setRole(user.name, body.role);
          recordAudit(ctx, request, 'user.update', user.name, {
            role: body.role,
            previousRole: user.role,
          });
        }
        if (hash !== undefined) {
          ctx.store.setPassword(user.name, hash);
          // Whoever knew the old password is logged out everywhere (the admin's own session stays).
          const ended = ctx.store.deleteTokensOf(
            user.id,
            user.id === admin.id ? request.credentials?.tokenHash : undefined,
          );
          recordAudit(ctx, request, 'user.password', user.name, {
            password: 'changed',
            sessionsEnded: ended,
          });
        }
        return existing(user.name);
      });
      request.log.info(
        {
          user: changed.name,
          role: body.role,
          password: body.password !== undefined,
          by: admin.name,
        },
        'user changed',
      );
      return view(changed);
    },
  );

  app.delete<{ Params: { name: string } }>('/api/v1/users/:name', async (request, reply) => {
    const admin = requireAdmin(request, ctx);
    if (admin.name === request.params.name)
      throw new MusterError('CONFLICT', 'you cannot delete yourself: ask another admin');
    const user = existing(request.params.name);
    keepAnAdmin(user, 'deleting it');
    ctx.store.transaction(() => {
      ctx.store.deleteUser(user.name);
      recordAudit(ctx, request, 'user.delete', user.name, { role: user.role });
    });
    request.log.info({ user: user.name, by: admin.name }, 'user deleted');
    return reply.code(204).send();
  });

  // Any user, on the primary (users are replicated from it): the current password proves it is
  // them and not someone at an unlocked screen.
  app.put('/api/v1/session/password', async (request, reply) => {
    const user = requireUser(request);
    requirePrimary(ctx);
    const body = parse(changePasswordBody, request.body, 'password change');
    if (!(await verifyPassword(body.current, user.passwordHash)))
      throw new MusterError('WRONG_PASSWORD', 'the current password is wrong: nothing changed');
    const hash = await ctx.hashPassword(body.password);
    ctx.store.transaction(() => {
      // Changed while the password was hashed (deleted, made anew, or its password reset by an
      // admin): the current password this request proved is no longer the one to replace.
      const now = ctx.store.getUserById(user.id);
      if (now === undefined || now.passwordHash !== user.passwordHash)
        throw new MusterError(
          'CONFLICT',
          `${user.name} changed while the new password was being set: nothing changed, try again`,
        );
      ctx.store.setPassword(user.name, hash);
      const ended = ctx.store.deleteTokensOf(user.id, request.credentials?.tokenHash);
      recordAudit(ctx, request, 'user.password', user.name, {
        password: 'changed',
        own: true,
        sessionsEnded: ended,
      });
    });
    request.log.info({ user: user.name }, 'password changed');
    return reply.code(204).send();
  });
}
