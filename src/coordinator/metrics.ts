/** Prometheus metrics on /metrics. */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly buildsSubmitted = new Counter({
    name: 'muster_builds_submitted_total',
    help: 'Builds submitted',
    registers: [this.registry],
  });
  readonly buildsFinished = new Counter({
    name: 'muster_builds_finished_total',
    help: 'Builds finished, by status',
    labelNames: ['status'],
    registers: [this.registry],
  });
  readonly loginFailures = new Counter({
    name: 'muster_login_failures_total',
    help: 'Failed logins',
    registers: [this.registry],
  });
  readonly blobBytesReceived = new Counter({
    name: 'muster_blob_bytes_received_total',
    help: 'Bytes of blobs uploaded by clients',
    registers: [this.registry],
  });
  readonly agents: Gauge;
  readonly runningAttempts: Gauge;

  constructor(sample: { agentsByStatus(): Record<string, number>; runningAttempts(): number }) {
    collectDefaultMetrics({ register: this.registry, prefix: 'muster_' });
    this.agents = new Gauge({
      name: 'muster_agents',
      help: 'Registered agents, by status',
      labelNames: ['status'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [status, n] of Object.entries(sample.agentsByStatus())) this.set({ status }, n);
      },
    });
    this.runningAttempts = new Gauge({
      name: 'muster_running_attempts',
      help: 'Task attempts in flight',
      registers: [this.registry],
      collect() {
        this.set(sample.runningAttempts());
      },
    });
  }
}
