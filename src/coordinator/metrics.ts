/** Prometheus metrics on /metrics. */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { BackupHealth } from '../api/status.js';
import { sampledGauge } from '../common/gauge.js';
import type { DiskUsageSample } from './disk-usage.js';

/** What /metrics shows of high availability, sampled at each scrape. */
export interface HaSample {
  /** On a primary: the selected backup's (and owed ones') health and lag as it sees them. */
  backups(): { name: string; health: BackupHealth; lagSeconds: number | null }[];
  /** On a backup: its own replication (undefined on a primary). */
  replication(): { failing: boolean; lagSeconds: number | null } | undefined;
}

const HEALTHS: BackupHealth[] = [
  'healthy',
  'unreachable',
  'unverified',
  'failback-failing',
  'replication-failing',
  'lagging',
];

/** How long the cache's totals are reused between scrapes. */
const CACHE_SAMPLE_MS = 30_000;

/** How often the event loop's delay (muster_nodejs_eventloop_lag_*) is sampled. */
const EVENT_LOOP_SAMPLE_MS = 100;

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
  readonly cacheLookups = new Counter({
    name: 'muster_cache_lookups_total',
    help: 'Shared-cache lookups (muster build, muster cc, cache: true tasks), by result: hit when the answer named at least one result',
    labelNames: ['result'],
    registers: [this.registry],
  });
  readonly agents: Gauge;
  readonly runningAttempts: Gauge;
  readonly backupHealth: Gauge;
  readonly backupLag: Gauge;
  readonly replicationFailing: Gauge;
  readonly replicationLag: Gauge;

  constructor(sample: {
    agentsByStatus(): Record<string, number>;
    runningAttempts(): number;
    /** Ready tasks waiting for a free slot. */
    queuedTasks(): number;
    activeBuilds(): number;
    /** The shared cache's results and the bytes of their outputs. */
    cache(): { entries: number; bytes: number };
    /** The data dir on disk (disk-usage.ts: cached for 30 s); undefined (unreadable): 0. */
    disk?: () => DiskUsageSample | undefined;
    ha: HaSample;
  }) {
    // The event loop's delay is sampled by a timer: prom-client's default (every 10 ms) wakes an
    // idle coordinator 100 times a second, ~10 ms of CPU a second; every 100 ms still shows a
    // blocked loop.
    collectDefaultMetrics({
      register: this.registry,
      prefix: 'muster_',
      eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS,
    });
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
    const gauge = (name: string, help: string, read: () => number | undefined): void =>
      sampledGauge(this.registry, name, help, read);
    gauge('muster_tasks_queued', 'Tasks ready to run that wait for a free agent slot', () =>
      sample.queuedTasks(),
    );
    gauge('muster_builds_active', 'Builds being scheduled (queued or running)', () =>
      sample.activeBuilds(),
    );
    // One query for both (cache.ts totals(): a scan of the cache's rows), at most every 30 s:
    // /metrics needs no login, and a large cache must not cost a scan per request.
    let cacheSample: { at: number; value: { entries: number; bytes: number } } | undefined;
    const cacheTotals = (): { entries: number; bytes: number } => {
      const now = Date.now();
      if (cacheSample === undefined || now - cacheSample.at > CACHE_SAMPLE_MS)
        cacheSample = { at: now, value: sample.cache() };
      return cacheSample.value;
    };
    gauge('muster_cache_entries', 'Results in the shared cache', () => cacheTotals().entries);
    gauge('muster_cache_bytes', "Bytes of the shared cache's outputs", () => cacheTotals().bytes);
    const disk = sample.disk;
    gauge(
      'muster_data_dir_bytes',
      "Bytes the data dir's database files and blob store take (the blobs as the last blob sweep counted them)",
      () => disk?.()?.dataDirBytes,
    );
    gauge(
      'muster_blob_store_bytes',
      'Bytes of the blob store as the last blob sweep counted them',
      () => disk?.()?.blobBytes,
    );
    gauge(
      'muster_data_dir_filesystem_free_bytes',
      "Bytes still free (to the coordinator's user) on the data dir's filesystem",
      () => disk?.()?.freeBytes,
    );
    gauge(
      'muster_data_dir_filesystem_size_bytes',
      "The size of the data dir's filesystem",
      () => disk?.()?.sizeBytes,
    );
    this.backupHealth = new Gauge({
      name: 'muster_backup_health',
      help: "On a primary: 1 for the selected backup's current health (healthy, unreachable, unverified, failback-failing, replication-failing, lagging), 0 for the others",
      labelNames: ['backup', 'health'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const backup of sample.ha.backups())
          for (const health of HEALTHS)
            this.set({ backup: backup.name, health }, backup.health === health ? 1 : 0);
      },
    });
    this.backupLag = new Gauge({
      name: 'muster_backup_lag_seconds',
      help: "On a primary: how far the selected backup's copy is behind, as this primary sees it",
      labelNames: ['backup'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const backup of sample.ha.backups())
          if (backup.lagSeconds !== null) this.set({ backup: backup.name }, backup.lagSeconds);
      },
    });
    this.replicationFailing = new Gauge({
      name: 'muster_replication_failing',
      help: "On a backup: 1 while its replication of the primary's state keeps failing",
      registers: [this.registry],
      collect() {
        this.reset();
        const replication = sample.ha.replication();
        if (replication) this.set(replication.failing ? 1 : 0);
      },
    });
    this.replicationLag = new Gauge({
      name: 'muster_replication_lag_seconds',
      help: "On a backup: how far its copy of the primary's state is behind, as it sees it",
      registers: [this.registry],
      collect() {
        this.reset();
        const lag = sample.ha.replication()?.lagSeconds;
        if (lag !== undefined && lag !== null) this.set(lag);
      },
    });
  }
}
