/** The agent pool: list, add (with its key and pinned fingerprint), change labels/slots, remove. */
import type { FastifyInstance } from 'fastify';
import { parseHostPort } from '../../common/duration.js';
import { MusterError } from '../../protocol/errors.js';
import { normaliseFingerprint } from '../../protocol/fingerprint.js';
import { recordAudit } from './audit.js';
import { requireAdmin, requireUser, type ApiContext } from './context.js';
import { parse } from './http-errors.js';
import { probeFingerprint } from '../pool/probe.js';
import { addAgentBody, probeAgentBody, updateAgentBody } from '../../api/requests.js';
import type { AgentView, ProbedAgentView } from '../../api/views/agents.js';
import { agentView } from './views.js';

function hostPortOf(address: string): { host: string; port: number } {
  try {
    return parseHostPort(address, { host: address, port: 7420 }, 'address');
  } catch {
    throw new MusterError('VALIDATION_FAILED', `address "${address}" is not HOST:PORT`);
  }
}

/** The agent as the pool sees it (gone when removed meanwhile: NOT_FOUND). */
function viewNamed(ctx: ApiContext, name: string): AgentView {
  const agent = ctx.agents.snapshot(name);
  if (!agent) throw new MusterError('NOT_FOUND', `no agent named ${name}`);
  return agentView(agent);
}

export function registerAgentRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get('/api/v1/agents', async (request): Promise<AgentView[]> => {
    requireUser(request);
    return ctx.agents.snapshots().map(agentView);
  });

  app.get<{ Params: { name: string } }>(
    '/api/v1/agents/:name',
    async (request): Promise<AgentView> => {
      requireUser(request);
      return viewNamed(ctx, request.params.name);
    },
  );

  // The certificate an agent presents, for an admin to confirm before adding it.
  app.post('/api/v1/agents/probe', async (request): Promise<ProbedAgentView> => {
    requireAdmin(request, ctx);
    const { address } = parse(probeAgentBody, request.body, 'probe');
    const { host, port } = hostPortOf(address);
    return { address: `${host}:${port}`, fingerprint: await probeFingerprint(host, port) };
  });

  app.post('/api/v1/agents', async (request, reply) => {
    requireAdmin(request, ctx);
    const body = parse(addAgentBody, request.body, 'agent');
    const { host, port } = hostPortOf(body.address);
    const tls = body.tls ?? true;
    if (tls && body.fingerprint === undefined) {
      throw new MusterError(
        'VALIDATION_FAILED',
        "give the agent's certificate fingerprint (muster agent prints it at start), or tls: false for an agent run with --no-tls",
      );
    }
    if (body.fingerprint !== undefined && normaliseFingerprint(body.fingerprint).length !== 64) {
      throw new MusterError(
        'VALIDATION_FAILED',
        'the fingerprint must be a SHA-256 (64 hex digits, colons allowed)',
      );
    }
    const row = ctx.store.transaction(() => {
      const added = ctx.store.addAgent({
        name: body.name,
        host,
        port,
        accessKey: body.accessKey,
        fingerprint: body.fingerprint ?? null,
        tls,
        labels: body.labels ?? [],
        slots: body.slots ?? null,
      });
      // Never the access key: that it was set is all the log says.
      recordAudit(ctx, request, 'agent.add', added.name, {
        address: `${added.host}:${added.port}`,
        tls: added.tls,
        fingerprint: added.fingerprint,
        labels: added.labels,
        slots: added.slots,
        accessKey: 'set',
      });
      return added;
    });
    ctx.agents.add(row);
    const view: AgentView = viewNamed(ctx, row.name);
    return reply.code(201).send(view);
  });

  app.patch<{ Params: { name: string } }>(
    '/api/v1/agents/:name',
    async (request): Promise<AgentView> => {
      requireAdmin(request, ctx);
      const body = parse(updateAgentBody, request.body, 'agent changes');
      const changes = {
        ...(body.labels === undefined ? {} : { labels: body.labels }),
        ...(body.slots === undefined ? {} : { slots: body.slots }),
      };
      const row = ctx.store.transaction(() => {
        const updated = ctx.store.updateAgent(request.params.name, changes);
        recordAudit(ctx, request, 'agent.update', updated.name, changes);
        return updated;
      });
      ctx.agents.update(row);
      ctx.scheduler.schedule();
      return viewNamed(ctx, row.name);
    },
  );

  // An agent that joined with a token works once an admin approves it.
  app.post<{ Params: { name: string } }>(
    '/api/v1/agents/:name/approve',
    async (request): Promise<AgentView> => {
      requireAdmin(request, ctx);
      const name = request.params.name;
      const row = ctx.store.transaction(() => {
        const agent = ctx.store.getAgent(name);
        if (agent === undefined) throw new MusterError('NOT_FOUND', `no agent named ${name}`);
        if (agent.approved) return agent;
        const approved = ctx.store.updateAgent(name, { approved: true });
        recordAudit(ctx, request, 'agent.approve', name, { agentId: approved.agentId });
        return approved;
      });
      ctx.agents.update(row);
      return viewNamed(ctx, row.name);
    },
  );

  app.delete<{ Params: { name: string } }>('/api/v1/agents/:name', async (request, reply) => {
    requireAdmin(request, ctx);
    ctx.store.transaction(() => {
      if (!ctx.store.removeAgent(request.params.name)) {
        throw new MusterError('NOT_FOUND', `no agent named ${request.params.name}`);
      }
      recordAudit(ctx, request, 'agent.remove', request.params.name);
    });
    ctx.agents.remove(request.params.name);
    return reply.code(204).send();
  });
}
