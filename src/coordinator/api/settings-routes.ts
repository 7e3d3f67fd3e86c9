/** Settings (admin to change): Agent.InstanceId and friends, each validated by its own schema. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { MusterError } from '../../protocol/errors.js';
import { recordAudit } from './audit.js';
import { requireAdmin, requireUser, type ApiContext } from './context.js';
import { parse } from './http-errors.js';
import { setSettingBody } from '../../api/requests.js';
import type {
  SettingChangedView,
  SettingDefinitionView,
  SettingView,
  SettingsView,
} from '../../api/views/settings.js';
import {
  CACHE_ACCEPT_CLIENT_RESULTS_SETTING,
  CACHE_MAX_BYTES_SETTING,
  DEFAULT_CACHE_MAX_BYTES,
  cacheMaxBytesSchema,
} from '../store/cache.js';
import { BUILDS_RETENTION_SETTING, buildsRetentionSchema } from '../builds/retention.js';

/** Every setting there is, with its schema and a short explanation (shown by the UI and docs). */
export const settingDefinitions: Record<string, SettingDefinition> = {
  'Agent.InstanceId': {
    schema: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'letters, digits, ".", "_", ":", "-"'),
    clearable: true,
    description:
      "Identifies this coordinator to agents. Coordinators that share agents need different ids; a backup uses its primary's. Agents reconnect with the new id. Cleared (empty), agents key this coordinator by its source address.",
  },
  [CACHE_MAX_BYTES_SETTING]: {
    schema: cacheMaxBytesSchema,
    clearable: true,
    description: `The bytes the shared compile cache may keep (the outputs and stderr of its results), as a number or a size such as 50GiB. Beyond it the least recently used results are removed, at the next blob sweep. 0 keeps none; cleared, the default: ${DEFAULT_CACHE_MAX_BYTES} (20 GiB).`,
  },
  [BUILDS_RETENTION_SETTING]: {
    schema: buildsRetentionSchema,
    clearable: true,
    description:
      'How long ended builds are kept, as a duration such as 30d or 12h (a number needs its unit). Older ones are deleted by the primary with their tasks, attempts and logs, a batch at a time, at the next blob sweep; their files once nothing else uses them. 0 or cleared (the default): builds are kept forever.',
  },
  [CACHE_ACCEPT_CLIENT_RESULTS_SETTING]: {
    schema: z.boolean(),
    description:
      "Whether users' machines may store compile results in the shared cache (true, the default: users who may run builds trust each other's results, as with a shared ccache). false: only results this coordinator obtained from its agents are stored.",
  },
};

interface SettingDefinition {
  schema: z.ZodType;
  description: string;
  /** Whether it may be cleared: an empty value or null stores "" (which is not "never set"). */
  clearable?: boolean;
}

/** The definition of a setting, if `key` is one (never Object.prototype's "constructor"…). */
function definitionOf(key: string): SettingDefinition | undefined {
  return Object.hasOwn(settingDefinitions, key) ? settingDefinitions[key] : undefined;
}

/** Never sent by the API: the instance key proves this coordinator to agents. */
const SECRET_SETTINGS = new Set(['Agent.InstanceKey']);
/** Shown to admins only: an instance id is what another coordinator would need to claim. */
const ADMIN_ONLY_SETTINGS = new Set(['Agent.InstanceId']);

function visible(key: string, user: { role: string }): boolean {
  return !SECRET_SETTINGS.has(key) && (user.role === 'admin' || !ADMIN_ONLY_SETTINGS.has(key));
}

export function registerSettingsRoutes(
  app: FastifyInstance,
  ctx: ApiContext,
  onChange: (key: string) => void,
): void {
  app.get('/api/v1/settings', async (request): Promise<SettingsView> => {
    const user = requireUser(request);
    return Object.fromEntries(
      Object.entries(ctx.store.listSettings()).filter(([key]) => visible(key, user)),
    );
  });

  // Every setting an admin may change, with its value and explanation (Admin › Advanced Settings).
  app.get('/api/v1/setting-definitions', async (request): Promise<SettingDefinitionView[]> => {
    const user = requireUser(request);
    return Object.entries(settingDefinitions).map(([key, definition]) => ({
      key,
      value: visible(key, user) ? (ctx.store.getSetting(key) ?? null) : null,
      description: definition.description,
      clearable: definition.clearable === true,
    }));
  });

  app.get<{ Params: { key: string } }>(
    '/api/v1/settings/:key',
    async (request): Promise<SettingView> => {
      const user = requireUser(request);
      const definition = definitionOf(request.params.key);
      if (!definition)
        throw new MusterError(
          'NOT_FOUND',
          `no setting ${request.params.key}; known: ${Object.keys(settingDefinitions).join(', ')}`,
        );
      if (!visible(request.params.key, user))
        throw new MusterError('FORBIDDEN', `${request.params.key} is shown to admins only`);
      return {
        key: request.params.key,
        value: ctx.store.getSetting(request.params.key) ?? null,
        description: definition.description,
      };
    },
  );

  app.put<{ Params: { key: string } }>(
    '/api/v1/settings/:key',
    async (request): Promise<SettingChangedView> => {
      requireAdmin(request, ctx);
      const definition = definitionOf(request.params.key);
      if (!definition)
        throw new MusterError(
          'NOT_FOUND',
          `no setting ${request.params.key}; known: ${Object.keys(settingDefinitions).join(', ')}`,
        );
      const { value } = parse(setSettingBody, request.body, 'setting');
      if (definition.clearable && (value === null || value === '')) {
        ctx.store.transaction(() => {
          ctx.store.setSetting(request.params.key, '');
          recordAudit(ctx, request, 'setting.set', request.params.key, {
            value: '',
            cleared: true,
          });
        });
        request.log.info({ key: request.params.key }, 'setting cleared');
        onChange(request.params.key);
        return { key: request.params.key, value: '' };
      }
      // `muster settings set KEY 123` sends a number; a text setting takes it as text.
      const candidate =
        (typeof value === 'number' || typeof value === 'boolean') &&
        !definition.schema.safeParse(value).success
          ? String(value)
          : value;
      const valid = parse(definition.schema, candidate, request.params.key);
      ctx.store.transaction(() => {
        ctx.store.setSetting(request.params.key, valid);
        // Settings are not secret (a secret one is never set through this route: SECRET_SETTINGS).
        recordAudit(ctx, request, 'setting.set', request.params.key, { value: valid });
      });
      request.log.info({ key: request.params.key }, 'setting changed');
      onChange(request.params.key);
      return { key: request.params.key, value: valid };
    },
  );
}
