/**
 * Live events as Server-Sent Events: GET /api/v1/events[?build=ID]. Each event is
 * `event: build|task|log|agent` with JSON data (EventMap in src/api/events.ts, mapped from the
 * coordinator's events by event-views.ts); a comment every 15 s keeps proxies from closing an idle
 * stream.
 */
import type { FastifyInstance } from 'fastify';
import { isEvent, type CoordinatorEventMap, type EventName } from '../events.js';
import { requireUser, type ApiContext } from './context.js';
import { eventView } from './event-views.js';

export function registerEventRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get<{ Querystring: { build?: string } }>('/api/v1/events', async (request, reply) => {
    requireUser(request);
    const buildFilter = request.query.build === undefined ? undefined : Number(request.query.build);
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    raw.write(': connected\n\n');
    const unsubscribe = ctx.events.subscribe((event, data) => {
      if (buildFilter !== undefined) {
        if (buildIdOf(event, data) !== buildFilter) return;
      }
      raw.write(`event: ${event}\ndata: ${JSON.stringify(eventView(event, data))}\n\n`);
    });
    const keepAlive = setInterval(() => raw.write(': keep-alive\n\n'), 15_000);
    keepAlive.unref();
    const close = (): void => {
      clearInterval(keepAlive);
      unsubscribe();
    };
    request.raw.on('close', close);
    raw.on('error', close);
  });
}

/** The build an event is about; undefined for an agent's. */
function buildIdOf(event: EventName, data: CoordinatorEventMap[EventName]): number | undefined {
  if (isEvent('build', event, data)) return data.build.id;
  if (isEvent('task', event, data) || isEvent('log', event, data)) return data.buildId;
  return undefined;
}
