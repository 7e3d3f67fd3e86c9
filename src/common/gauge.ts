/** A Prometheus gauge of one value, read at each scrape (the agent's and the coordinator's /metrics). */
import { Gauge, type Registry } from 'prom-client';

/** Registers `name`; `read` is called at each scrape, and undefined leaves the gauge empty. */
export function sampledGauge(
  registry: Registry,
  name: string,
  help: string,
  read: () => number | undefined,
): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      const value = read();
      if (value !== undefined) this.set(value);
    },
  });
}
