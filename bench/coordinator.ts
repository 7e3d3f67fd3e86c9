/**
 * Coordinator benchmarks: no-op tasks through a real coordinator, its agents and their host
 * processes (latency of a chain, throughput of wide builds), and a coordinator holding thousands
 * of idle agent connections (memory and heartbeat CPU, agents simulated by bench/sim-agent.ts).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { AttemptView, BuildView } from '../src/api/views/builds.js';
import type { StatusView } from '../src/api/views/status.js';
import {
  inBatches,
  sampleProcess,
  sleep,
  withAgents,
  withCoordinator,
  type BenchCoordinator,
} from './coordinator-process.js';
import {
  fmt,
  list,
  mean,
  median,
  now,
  percentile,
  type BenchContext,
  type Benchmark,
  type Measurement,
} from './measure.js';

// ---- shared helpers ---------------------------------------------------------------------------

/** A plan of `count` `core/noop` tasks; `chain`: each needs the one before. */
function noopPlan(name: string, count: number, chain: boolean): string {
  const lines = [`name: ${name}`, 'tasks:'];
  const width = String(count - 1).length;
  const task = (i: number): string => `t${String(i).padStart(width, '0')}`;
  for (let i = 0; i < count; i++) {
    lines.push(`  ${task(i)}:`, '    uses: core/noop');
    if (chain && i > 0) lines.push(`    needs: [${task(i - 1)}]`);
  }
  return `${lines.join('\n')}\n`;
}

async function submit(coordinator: BenchCoordinator, plan: string): Promise<BuildView> {
  const response = await coordinator.api<BuildView>('POST', '/builds', { plan, files: [] });
  if (response.status !== 201) {
    throw new Error(`submitting a build: ${response.status} ${JSON.stringify(response.body)}`);
  }
  return response.body;
}

function expectSucceeded(build: BuildView): void {
  if (build.status !== 'succeeded') {
    const failed = build.tasks.find((t) => t.status !== 'succeeded');
    throw new Error(
      `build ${build.id} ${build.status}${failed ? `: ${failed.name} ${failed.status} ${failed.error ?? ''}` : ''}`,
    );
  }
}

async function attemptsOf(coordinator: BenchCoordinator, id: number): Promise<AttemptView[]> {
  const response = await coordinator.api<AttemptView[]>('GET', `/builds/${id}/attempts`);
  if (response.status !== 200) throw new Error(`attempts of build ${id}: ${response.status}`);
  return response.body;
}

/**
 * Builds finished so far, from the coordinator's Prometheus counter. Polled instead of GET
 * /api/v1/status, which parses every active build's whole row (~25 ms of the coordinator's time
 * per call with two 10,000-task builds active).
 */
async function buildsFinished(coordinator: BenchCoordinator): Promise<number> {
  const text = await (await fetch(`${coordinator.url}/metrics`)).text();
  let total = 0;
  for (const match of text.matchAll(/^muster_builds_finished_total\{[^}]*\} (\d+)/gm))
    total += Number(match[1]);
  return total;
}

/** Polls until `count` builds have finished in all (or the deadline passes). */
async function waitFinished(
  coordinator: BenchCoordinator,
  count: number,
  deadline: number,
  intervalMs: number,
): Promise<boolean> {
  for (;;) {
    if ((await buildsFinished(coordinator)) >= count) return true;
    if (Date.now() > deadline) return false;
    await sleep(intervalMs);
  }
}

const ms = (iso: string): number => Date.parse(iso);

interface SseEvent {
  event: string;
  data: unknown;
  /** performance.now() when the event's last line arrived. */
  at: number;
}

/**
 * GET /api/v1/events (every build) as Server-Sent Events. `onEvent` gets each event stamped with
 * its arrival time; resolves once the stream is open.
 */
async function openEvents(
  coordinator: BenchCoordinator,
  onEvent: (event: SseEvent) => void,
): Promise<{ close(): void }> {
  const controller = new AbortController();
  const response = await fetch(`${coordinator.url}/api/v1/events`, {
    headers: { authorization: `Bearer ${coordinator.token}`, accept: 'text/event-stream' },
    signal: controller.signal,
  });
  if (response.status !== 200 || response.body === null)
    throw new Error(`event stream: ${response.status}`);
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  void (async () => {
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        const at = now();
        buffer += decoder.decode(value, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = 'message';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (data !== '') onEvent({ event, data: JSON.parse(data) as unknown, at });
        }
      }
    } catch {
      // aborted
    }
  })();
  return { close: () => controller.abort() };
}

// ---- 1. latency ---------------------------------------------------------------------------

export const coordinatorLatency: Benchmark = {
  name: 'coordinator latency',
  describe:
    'One coordinator and one real agent (TLS, one host process). A plan that is a chain of 500 `uses: core/noop` tasks, ' +
    'each `needs` the one before, so each dispatch waits for the previous result: the time between two consecutive ' +
    'tasks succeeding is one whole trip — the coordinator records the result (SQLite), releases the next task, records ' +
    'its attempt, sends `task.start` to the agent, the agent hands it to the host over IPC, the no-op runs, the result ' +
    'comes back (the release of the finished task to the agent goes out meanwhile). p50/p99 are of those gaps in two ' +
    'chains, timed in the benchmark by the arrival of the `task` events on an SSE stream (GET /api/v1/events; ' +
    'sub-millisecond clock, so the gaps include the stream writes). The mean is of a third chain with no stream open, ' +
    '(last - first attempt finishedAt) / 499 from GET /builds/ID/attempts (the coordinator stamps ms, too coarse for ' +
    'percentiles). A 100-task chain warms up first.',
  async run(ctx) {
    const count = ctx.quick ? 100 : 500;
    const runs = ctx.quick ? 1 : 2;
    return withCoordinator((coordinator) =>
      withAgents(1, async ([agent]) => {
        await coordinator.addAgent('agent-1', agent!);
        await coordinator.waitForAgents(1);
        expectSucceeded(
          await coordinator.waitForBuild(
            (await submit(coordinator, noopPlan('warm-up', ctx.quick ? 50 : 100, true))).id,
          ),
        );

        // Chains with an event stream open: gaps between the tasks' "succeeded" events.
        const gaps: number[] = [];
        const streamedMeans: number[] = [];
        for (let run = 0; run < runs; run++) {
          const arrivals = new Map<number, Map<string, number>>();
          const ended = new Map<number, string>();
          const stream = await openEvents(coordinator, (e) => {
            if (e.event === 'task') {
              const { buildId, task } = e.data as { buildId: number; task: BuildView['tasks'][0] };
              if (task.status !== 'succeeded') return;
              let byTask = arrivals.get(buildId);
              if (!byTask) arrivals.set(buildId, (byTask = new Map<string, number>()));
              byTask.set(task.name, e.at);
            } else if (e.event === 'build') {
              const { id, status } = e.data as { id: number; status: string };
              if (status !== 'queued' && status !== 'running') ended.set(id, status);
            }
          });
          try {
            const build = await submit(coordinator, noopPlan(`chain-${run}`, count, true));
            const deadline = Date.now() + 60_000;
            while (!ended.has(build.id)) {
              if (Date.now() > deadline) throw new Error(`chain build ${build.id} did not end`);
              await sleep(20);
            }
            if (ended.get(build.id) !== 'succeeded')
              expectSucceeded(await coordinator.waitForBuild(build.id));
            const times = build.tasks.map((t) => arrivals.get(build.id)?.get(t.name));
            if (times.some((t) => t === undefined))
              throw new Error('an event stream missed a task');
            const sorted = (times as number[]).slice().sort((a, b) => a - b);
            for (let i = 1; i < sorted.length; i++) gaps.push(sorted[i]! - sorted[i - 1]!);
            streamedMeans.push((sorted.at(-1)! - sorted[0]!) / (sorted.length - 1));
          } finally {
            stream.close();
          }
        }

        // The same chain with nobody listening: mean from the coordinator's own timestamps.
        const build = await submit(coordinator, noopPlan('chain-quiet', count, true));
        const done = await coordinator.waitForBuild(build.id, 60_000, 200);
        expectSucceeded(done);
        const attempts = (await attemptsOf(coordinator, build.id))
          .filter((a) => a.finishedAt !== null)
          .sort((a, b) => ms(a.finishedAt!) - ms(b.finishedAt!));
        const finished = attempts.map((a) => ms(a.finishedAt!));
        const quietMean = (finished.at(-1)! - finished[0]!) / (finished.length - 1);
        const quietGaps = finished.slice(1).map((t, i) => t - finished[i]!);
        const inAttempt = attempts.map((a) => ms(a.finishedAt!) - ms(a.startedAt));
        const wall = ms(done.finishedAt!) - ms(done.startedAt!);

        const p50 = median(gaps);
        const p99 = percentile(gaps, 99);
        ctx.log(
          `chain of ${count}, ${runs} run(s) with an event stream: p50 ${fmt(p50)} ms, p99 ${fmt(p99)} ms, ` +
            `mean ${streamedMeans.map((m) => fmt(m)).join(' / ')} ms`,
        );
        ctx.log(
          `chain of ${count}, no event stream: mean ${fmt(quietMean)} ms/task (build wall ${fmt(wall, 0)} ms); ` +
            `from ms timestamps: gap p50 ${fmt(median(quietGaps), 0)} ms, p99 ${fmt(percentile(quietGaps, 99), 0)} ms; ` +
            `attempt startedAt->finishedAt p50 ${fmt(median(inAttempt), 0)} ms, mean ${fmt(mean(inAttempt))} ms`,
        );
        const rows: Measurement[] = [
          {
            benchmark: 'coordinator latency',
            metric: 'no-op task through coordinator, agent and host (chain): p50',
            value: p50,
            unit: 'ms',
            aim: { op: '<=', value: 2 },
            detail: `${runs} chain(s) of ${count}, gaps between "succeeded" events on an SSE stream; min ${fmt(Math.min(...gaps))} ms`,
          },
          {
            benchmark: 'coordinator latency',
            metric: 'no-op task through coordinator, agent and host (chain): p99',
            value: p99,
            unit: 'ms',
            detail: `${gaps.length.toLocaleString('en-US')} gaps; max ${fmt(Math.max(...gaps))} ms`,
          },
          {
            benchmark: 'coordinator latency',
            metric: 'no-op task through coordinator, agent and host (chain): mean, no event stream',
            value: quietMean,
            unit: 'ms',
            detail:
              `chain of ${count} from attempts' finishedAt (ms); build wall ${fmt(wall, 0)} ms; ` +
              `with the event stream: ${streamedMeans.map((m) => fmt(m)).join(' / ')} ms`,
          },
        ];
        return rows;
      }),
    );
  },
};

// ---- 2. throughput ------------------------------------------------------------------------

const THROUGHPUT_SLOTS = 32;
/** Rounds on one warmed-up coordinator; the median is reported (one round varies by ±20 %). */
const THROUGHPUT_ROUNDS = 3;

export const coordinatorThroughput: Benchmark = {
  name: 'coordinator throughput',
  describe:
    `One coordinator and 10 real agent processes (TLS, each registered with ${THROUGHPUT_SLOTS} slots, each with its own host process), ` +
    'all on this machine. After a 1,000-task warm-up build, two builds of 10,000 independent `uses: core/noop` tasks ' +
    'are submitted at once (20,000 tasks). Rate = tasks that finished after both POST /api/v1/builds were answered (so ' +
    'the second-long parsing of each 10,000-task plan, which stalls the coordinator, is left out) / the time from then to ' +
    "the last attempt's finishedAt (coordinator timestamps, ms, same clock). The rate counted from the first POST is shown " +
    'too. A round is cut at 45 s (the rate is then of the tasks done by then). Three rounds on the same ' +
    'coordinator; the median is reported.',
  async run(ctx) {
    const agentCount = ctx.quick ? 4 : 10;
    const perBuild = ctx.quick ? 1000 : 10_000;
    const builds = 2;
    const cutMs = ctx.quick ? 30_000 : 45_000;
    return withCoordinator((coordinator) =>
      withAgents(agentCount, async (agents) => {
        await Promise.all(
          agents.map((agent, i) =>
            coordinator.addAgent(`agent-${i + 1}`, agent, { slots: THROUGHPUT_SLOTS }),
          ),
        );
        await coordinator.waitForAgents(agentCount);
        const warm = await submit(coordinator, noopPlan('warm-up', ctx.quick ? 200 : 1000, false));
        expectSucceeded(await coordinator.waitForBuild(warm.id, 60_000, 200));

        const plan = noopPlan('wide', perBuild, false);
        const rounds: Round[] = [];
        for (let round = 1; round <= (ctx.quick ? 1 : THROUGHPUT_ROUNDS); round++) {
          rounds.push(
            await throughputRound(ctx, coordinator, plan, {
              builds,
              perBuild,
              cutMs,
              agentCount,
              round,
            }),
          );
        }
        const rate = median(rounds.map((r) => r.rate));
        const middle = rounds.find((r) => r.rate === rate) ?? rounds[0]!;
        const rows: Measurement[] = [
          {
            benchmark: 'coordinator throughput',
            metric: `no-op tasks/s, ${builds} x ${perBuild.toLocaleString('en-US')} over ${agentCount} agents`,
            value: rate,
            unit: 'ops/s',
            aim: { op: '>=', value: 5000 },
            detail:
              `median of ${rounds.length} rounds (${list(
                rounds.map((r) => r.rate),
                'tasks/s',
              )}); in that round ` + `${middle.detail}`,
          },
        ];
        return rows;
      }),
    );
  },
};

interface Round {
  rate: number;
  detail: string;
}

/** One round: two wide builds submitted at once on the warmed-up coordinator, timed. */
async function throughputRound(
  ctx: BenchContext,
  coordinator: BenchCoordinator,
  plan: string,
  o: { builds: number; perBuild: number; cutMs: number; agentCount: number; round: number },
): Promise<Round> {
  const { builds, perBuild, cutMs, agentCount } = o;
  const finishedBefore = await buildsFinished(coordinator);
  // Wall-clock (Date.now) stamps: the coordinator's timestamps are on the same clock.
  const postedAt = Date.now();
  const t0 = now();
  const submitted = await Promise.all(
    Array.from({ length: builds }, async () => {
      const start = now();
      const build = await submit(coordinator, plan);
      return { build, postMs: now() - start };
    }),
  );
  const bothIn = Date.now();
  const allSubmittedMs = now() - t0;
  const target = finishedBefore + builds;
  const finishedInTime = await waitFinished(coordinator, target, Date.now() + cutMs, 500);
  if (!finishedInTime) {
    for (const { build } of submitted) await coordinator.api('POST', `/builds/${build.id}/cancel`);
    await waitFinished(coordinator, target, Date.now() + 30_000, 250);
  }
  const views = await Promise.all(
    submitted.map(
      async ({ build }) => (await coordinator.api<BuildView>('GET', `/builds/${build.id}`)).body,
    ),
  );
  if (finishedInTime) for (const v of views) expectSucceeded(v);
  const attempts = (
    await Promise.all(submitted.map(({ build }) => attemptsOf(coordinator, build.id)))
  ).flat();
  const succeeded = attempts.filter((a) => a.status === 'succeeded' && a.finishedAt !== null);
  const end = Math.max(...succeeded.map((a) => ms(a.finishedAt!)));
  const inWindow = succeeded.filter((a) => ms(a.finishedAt!) >= bothIn).length;
  const rate = inWindow / ((end - bothIn) / 1000);
  const overall = succeeded.length / ((end - postedAt) / 1000);
  const perAgent = new Map<string, number>();
  for (const a of succeeded) perAgent.set(a.agent, (perAgent.get(a.agent) ?? 0) + 1);
  const counts = [...perAgent.values()];
  ctx.log(
    `round ${o.round}: ${succeeded.length.toLocaleString('en-US')} no-ops over ${agentCount} agents: ${fmt(rate, 0)} tasks/s ` +
      `(${inWindow} in ${fmt(end - bothIn, 0)} ms after both builds were accepted); ` +
      `${fmt(overall, 0)} tasks/s from the first POST (${fmt(end - postedAt, 0)} ms)` +
      `${finishedInTime ? '' : `; CUT at ${cutMs / 1000} s`}`,
  );
  ctx.log(
    `POST /builds of ${perBuild.toLocaleString('en-US')} tasks: ${submitted.map((s) => fmt(s.postMs, 0)).join(' / ')} ms ` +
      `(both answered after ${fmt(allSubmittedMs, 0)} ms); tasks per agent min ${Math.min(...counts)}, max ${Math.max(...counts)}`,
  );
  return {
    rate,
    detail:
      `${inWindow.toLocaleString('en-US')} tasks in ${fmt((end - bothIn) / 1000)} s after both builds were accepted` +
      `${finishedInTime ? '' : ` (cut at ${cutMs / 1000} s)`}; ${fmt(overall, 0)} tasks/s counting from the first ` +
      `POST; the two POST /builds took ${submitted.map((s) => fmt(s.postMs / 1000)).join(' / ')} s`,
  };
}

// ---- 3. many idle agents ------------------------------------------------------------------

const simAgentPath = fileURLToPath(new URL('./sim-agent.js', import.meta.url));

interface SimAgent {
  port: number;
  fingerprint: string | undefined;
  accessKey: string;
  pid: number;
  stats(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

async function startSimAgent(tls: boolean): Promise<SimAgent> {
  const accessKey = randomBytes(24).toString('base64url');
  const child = spawn(
    process.execPath,
    [simAgentPath, '--access-key', accessKey, '--listen', '127.0.0.1:0', ...(tls ? ['--tls'] : [])],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const waiters: ((line: Record<string, unknown>) => void)[] = [];
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    try {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      waiters.shift()?.(parsed);
    } catch {
      // not ours
    }
  });
  const next = (what: string): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`sim agent: no ${what}: ${stderr}`)), 20_000);
      waiters.push((line) => {
        clearTimeout(timer);
        resolve(line);
      });
    });
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  try {
    const listening = await next('listening line');
    return {
      port: listening.port as number,
      fingerprint: listening.fingerprint as string | undefined,
      accessKey,
      pid: child.pid!,
      stats: async () => {
        const answer = next('stats');
        child.stdin.write('stats\n');
        return (await answer) as Record<string, number>;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Heap used, from the coordinator's Prometheus metrics (prom-client's default metrics). */
async function heapUsedBytes(coordinator: BenchCoordinator): Promise<number> {
  const text = await (await fetch(`${coordinator.url}/metrics`)).text();
  const match = /^muster_nodejs_heap_size_used_bytes (\d+(?:\.\d+)?)/m.exec(text);
  return match ? Number(match[1]) : Number.NaN;
}

export const coordinatorManyAgents: Benchmark = {
  name: 'coordinator with 5,000 agents',
  describe:
    'One coordinator (default 5 s heartbeat) and one simulated-agent process (`bench/sim-agent.ts`: the real framing and ' +
    'hello/challenge/auth/ready handshake over TLS with its own self-signed certificate, like a default agent; answers ' +
    '`sync.offer` at once, `ping`, `tasks.list`) listening on one port. 5,000 agents `sim-0`..`sim-4999` are registered ' +
    'at that address (POST /api/v1/agents, 50 at a time, fingerprint pinned) until GET /api/v1/status says all are ' +
    'connected. KB per agent = (coordinator VmRSS at the end of the rest period - VmRSS before registering) / 5,000 ' +
    '(KB = 1,000 bytes). CPU = utime + stime of the coordinator over 30 s at rest (no API calls, so only heartbeats) / 30 s, ' +
    'in % of one core; the idle coordinator before registering is shown for comparison. `BENCH_SIM_TLS=0` uses plain TCP.',
  async run(ctx) {
    const count = ctx.quick ? 1000 : 5000;
    const restMs = ctx.quick ? 10_000 : 30_000;
    const idleMs = ctx.quick ? 3000 : 5000;
    const tls = process.env.BENCH_SIM_TLS !== '0';
    const sim = await startSimAgent(tls);
    try {
      return await withCoordinator(async (coordinator) => {
        const pid = coordinator.pid;
        await coordinator.api('GET', '/status');
        await sleep(1000);
        const idle0 = sampleProcess(pid);
        await sleep(idleMs);
        const idle1 = sampleProcess(pid);
        const idleCpu = ((idle1.cpuMs - idle0.cpuMs) / (idle1.at - idle0.at)) * 100;
        const baseline = idle1;
        const heapBefore = await heapUsedBytes(coordinator);

        const names = Array.from({ length: count }, (_, i) => `sim-${i}`);
        const registerStart = now();
        await inBatches(names, 50, async (name) => {
          const response = await coordinator.api('POST', '/agents', {
            name,
            address: `127.0.0.1:${sim.port}`,
            accessKey: sim.accessKey,
            ...(sim.fingerprint === undefined ? { tls: false } : { fingerprint: sim.fingerprint }),
          });
          if (response.status !== 201)
            throw new Error(`adding ${name}: ${response.status} ${JSON.stringify(response.body)}`);
        });
        const registeredMs = now() - registerStart;
        await coordinator.waitForAgents(count, 60_000);
        const connectedMs = now() - registerStart;
        const afterConnect = sampleProcess(pid);

        // At rest: no API calls, only heartbeats.
        const simBefore = await sim.stats();
        const rest0 = sampleProcess(pid);
        await sleep(restMs);
        const rest1 = sampleProcess(pid);
        const simAfter = await sim.stats();
        const cpu = ((rest1.cpuMs - rest0.cpuMs) / (rest1.at - rest0.at)) * 100;
        const kernelCpu = ((rest1.systemMs - rest0.systemMs) / (rest1.at - rest0.at)) * 100;
        const pingsPerSecond =
          ((simAfter.pings! - simBefore.pings!) / (rest1.at - rest0.at)) * 1000;
        // KB = 1,000 bytes, like measure.ts's MB (VmRSS is in KiB).
        const kbPerAgent = ((rest1.rssKiB - baseline.rssKiB) * 1024) / 1000 / count;
        const heap = await heapUsedBytes(coordinator);

        // A diagnostic for the API at this size (after the measurement).
        const listStart = now();
        const list = await coordinator.api<unknown[]>('GET', '/agents');
        const listMs = now() - listStart;
        const statusStart = now();
        const status = await coordinator.api<StatusView>('GET', '/status');
        const statusMs = now() - statusStart;

        ctx.log(
          `registered ${count} agents in ${fmt(registeredMs / 1000)} s, all connected after ${fmt(connectedMs / 1000)} s ` +
            `(sim: ${simAfter.ready} ready connections, ${simAfter.authFailures} auth failures)`,
        );
        ctx.log(
          `RSS: ${fmt(baseline.rssKiB / 1024, 1)} MiB before, ${fmt(afterConnect.rssKiB / 1024, 1)} MiB once connected, ` +
            `${fmt(rest1.rssKiB / 1024, 1)} MiB after ${restMs / 1000} s at rest -> ${fmt(kbPerAgent, 1)} KB per agent; ` +
            `heap used ${fmt(heapBefore / 2 ** 20, 1)} MiB before, ${fmt(heap / 2 ** 20, 1)} MiB after`,
        );
        ctx.log(
          `CPU at rest: ${fmt(cpu)} % of a core (${fmt(kernelCpu)} % in the kernel) with ${count} agents ` +
            `(${fmt(pingsPerSecond, 0)} pings/s answered), ` +
            `${fmt(idleCpu)} % idle with none`,
        );
        ctx.log(
          `GET /api/v1/agents (${list.body.length} agents): ${fmt(listMs, 0)} ms; GET /api/v1/status: ${fmt(statusMs, 0)} ms ` +
            `(${status.body.agents.connected} connected)`,
        );
        const rows: Measurement[] = [
          {
            benchmark: 'coordinator with 5,000 agents',
            metric: `coordinator memory per connected agent (${count.toLocaleString('en-US')} agents, ${tls ? 'TLS' : 'plain TCP'})`,
            value: kbPerAgent,
            unit: 'KB',
            aim: { op: '<=', value: 200 },
            detail:
              `VmRSS ${fmt(baseline.rssKiB / 1024, 1)} MiB before, ${fmt(afterConnect.rssKiB / 1024, 1)} MiB just connected, ` +
              `${fmt(rest1.rssKiB / 1024, 1)} MiB after ${restMs / 1000} s at rest; heap used then ${fmt(heap / 2 ** 20, 1)} MiB; ` +
              `all connected ${fmt(connectedMs / 1000)} s after the first POST`,
          },
          {
            benchmark: 'coordinator with 5,000 agents',
            metric: `coordinator CPU at rest with ${count.toLocaleString('en-US')} agents (${tls ? 'TLS' : 'plain TCP'}, 5 s heartbeat)`,
            value: cpu,
            unit: '% of a core',
            aim: { op: '<=', value: 10 },
            detail:
              `utime+stime over ${restMs / 1000} s (stime ${fmt(kernelCpu)} %), ${fmt(pingsPerSecond, 0)} pings/s; ` +
              `idle coordinator with no agents ${fmt(idleCpu)} %`,
          },
        ];
        return rows;
      });
    } finally {
      await sim.stop();
    }
  },
};
