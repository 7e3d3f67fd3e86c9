/** Settings (admin to change): Agent.InstanceId and friends, each validated by its own schema. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { MusterError } from '../../protocol/errors.js';
import { requireAdmin, requireUser, type ApiContext } from './context.js';
import { parse } from './http-errors.js';
import { setSettingBody } from './schemas.js';

/** Every setting there is, with its schema and a short explanation (shown by the UI and docs). */
export const settingDefinitions: Record<string, { schema: z.ZodType; description: string }> = {
  'Agent.InstanceId': {
    schema: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'letters, digits, ".", "_", ":", "-"'),
    description:
      "Identifies this coordinator to agents. Coordinators that share agents need different ids; a backup uses its primary's. Agents reconnect with the new id.",
  },
};

export function registerSettingsRoutes(
  app: FastifyInstance,
  ctx: ApiContext,
  onChange: (key: string) => void,
): void {
  app.get('/api/v1/settings', async (request) => {
    requireUser(request);
    return ctx.store.listSettings();
  });

  // Every setting an admin may change, with its value and explanation (Admin › Advanced Settings).
  app.get('/api/v1/setting-definitions', async (request) => {
    requireUser(request);
    return Object.entries(settingDefinitions).map(([key, definition]) => ({
      key,
      value: ctx.store.getSetting(key) ?? null,
      description: definition.description,
    }));
  });

  app.get<{ Params: { key: string } }>('/api/v1/settings/:key', async (request) => {
    requireUser(request);
    const definition = settingDefinitions[request.params.key];
    if (!definition)
      throw new MusterError(
        'NOT_FOUND',
        `no setting ${request.params.key}; known: ${Object.keys(settingDefinitions).join(', ')}`,
      );
    return {
      key: request.params.key,
      value: ctx.store.getSetting(request.params.key) ?? null,
      description: definition.description,
    };
  });

  app.put<{ Params: { key: string } }>('/api/v1/settings/:key', async (request) => {
    requireAdmin(request, ctx);
    const definition = settingDefinitions[request.params.key];
    if (!definition)
      throw new MusterError(
        'NOT_FOUND',
        `no setting ${request.params.key}; known: ${Object.keys(settingDefinitions).join(', ')}`,
      );
    const { value } = parse(setSettingBody, request.body, 'setting');
    // `muster settings set KEY 123` sends a number; a text setting takes it as text.
    const candidate =
      (typeof value === 'number' || typeof value === 'boolean') &&
      !definition.schema.safeParse(value).success
        ? String(value)
        : value;
    const valid = parse(definition.schema, candidate, request.params.key);
    ctx.store.setSetting(request.params.key, valid);
    request.log.info({ key: request.params.key }, 'setting changed');
    onChange(request.params.key);
    return { key: request.params.key, value: valid };
  });
}
