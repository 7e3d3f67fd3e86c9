/**
 * The agent's `/metrics` (Prometheus text), served only with --metrics-listen, on an address of
 * its own, plain HTTP and without a login like the coordinator's: counts, never a name, path,
 * key or task of an instance. One request at a time is enough for a scraper: a peer that opens
 * many connections or sends slowly is cut off (maxConnections, timeouts), and nothing but
 * `GET /metrics` is answered.
 */
import { createServer, type Server } from 'node:http';
import type { Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { sampledGauge } from '../common/gauge.js';

/** What the gauges read at each scrape. */
export interface AgentSample {
  /** Connections past their TLS handshake: coordinators, authenticated or authenticating. */
  sessions(): number;
  /** Connections accepted and not yet authenticated. */
  unauthenticated(): number;
  tasksRunning(): number;
  /** Task records kept (running, or ended and waiting for their coordinator). */
  tasksKept(): number;
  instances(): number;
  hostProcesses(): number;
}

const MAX_CONNECTIONS = 16;
const REQUEST_TIMEOUT_MS = 10_000;

export function agentRegistry(sample: AgentSample): Registry {
  const registry = new Registry();
  // The event loop's delay every 100 ms, as on the coordinator (metrics.ts there).
  collectDefaultMetrics({
    register: registry,
    prefix: 'muster_',
    eventLoopMonitoringPrecision: 100,
  });
  const gauge = (name: string, help: string, read: () => number): void =>
    sampledGauge(registry, name, help, read);

  gauge(
    'muster_agent_sessions',
    'Coordinator connections past their TLS handshake (authenticated or authenticating)',
    () => sample.sessions(),
  );
  gauge(
    'muster_agent_unauthenticated_connections',
    'Connections accepted and not yet authenticated',
    () => sample.unauthenticated(),
  );
  gauge('muster_agent_tasks_running', 'Tasks running', () => sample.tasksRunning());
  gauge(
    'muster_agent_tasks_kept',
    'Task records kept: running, or ended and waiting for their coordinator',
    () => sample.tasksKept(),
  );
  gauge('muster_agent_instances', 'Instances (one per coordinator and version)', () =>
    sample.instances(),
  );
  gauge('muster_agent_host_processes', 'Host processes running', () => sample.hostProcesses());
  return registry;
}

/** Listens on host:port for GET /metrics; resolves once listening. */
export async function serveMetrics(
  registry: Registry,
  host: string,
  port: number,
  log: Logger,
): Promise<Server> {
  const server = createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    if (request.method !== 'GET' || path !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n');
      return;
    }
    registry
      .metrics()
      .then((text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text))
      .catch((err: unknown) => {
        log.warn({ err }, 'metrics: collecting failed');
        response.writeHead(500, { 'content-type': 'text/plain' }).end('collecting failed\n');
      });
  });
  server.maxConnections = MAX_CONNECTIONS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.headersTimeout = REQUEST_TIMEOUT_MS;
  server.keepAliveTimeout = 5_000;
  // A connection silent this long is closed at once (requestTimeout is only checked every 30 s).
  server.setTimeout(REQUEST_TIMEOUT_MS, (socket) => socket.destroy());
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err }, 'metrics listener error'));
  return server;
}
