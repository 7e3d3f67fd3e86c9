/** The plan language's JSON Schema, for editors that validate and complete muster.yml. */
import type { FastifyInstance } from 'fastify';
import { planJsonSchema } from '../../api/plan/schema.js';

/** Public, like the OpenAPI document: an editor fetches it without logging in. */
const open = { config: { access: 'public' as const } };

export function registerPlanSchemaRoutes(app: FastifyInstance): void {
  const text = JSON.stringify(planJsonSchema(), null, 2);
  app.get('/api/v1/plan.schema.json', open, async (_request, reply) =>
    reply.header('content-type', 'application/schema+json; charset=utf-8').send(text),
  );
}
