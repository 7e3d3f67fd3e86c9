/**
 * Runs every benchmark in sequence and prints the medians next to the aims of the issue.
 *
 *   npm run bench                       build, then run everything (a few minutes)
 *   node dist/bench/run.js --write      ... and rewrite docs/benchmarks.md (or BENCH_WRITE=1)
 *   node dist/bench/run.js --quick      smaller counts, for trying things out (never written)
 *   node dist/bench/run.js --only sync  only benchmarks whose name contains "sync"
 *
 * BENCH_AGENT_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" passes node flags to every agent
 * (and, through fork, to its host processes); BENCH_DIR=/dir puts the agents' data dirs there.
 * Aims are reported, never enforced: the exit code is non-zero only when a benchmark could not run.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, tmpdir, totalmem, type } from 'node:os';
import { fileURLToPath } from 'node:url';
import { noopLatency, noopThroughput } from './agent-ops.js';
import { stalledConnections } from './agent-stalled.js';
import { coldSync, reSync } from './agent-sync.js';
import { ccHeaderEdit } from './cc-header-edit.js';
import { ccHotPath } from './cc-hot-path.js';
import { ccPeers } from './cc-peers.js';
import { cBuild } from './coordinator-c-build.js';
import { coordinatorLatency, coordinatorManyAgents, coordinatorThroughput } from './coordinator.js';
import { haFailover } from './ha.js';
import { fmt, meets, type Benchmark, type Measurement } from './measure.js';

const benchmarks: Benchmark[] = [
  coldSync,
  reSync,
  noopLatency,
  noopThroughput,
  stalledConnections,
  coordinatorLatency,
  coordinatorThroughput,
  coordinatorManyAgents,
  cBuild,
  ccPeers,
  ccHotPath,
  ccHeaderEdit,
  haFailover,
];

const docsPath = fileURLToPath(new URL('../../docs/benchmarks.md', import.meta.url));

interface Args {
  write: boolean;
  quick: boolean;
  only: string[];
}

function parseArgs(argv: string[]): Args {
  const args: Args = { write: process.env.BENCH_WRITE === '1', quick: false, only: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--write') args.write = true;
    else if (arg === '--quick') args.quick = true;
    else if (arg === '--only' && argv[i + 1] !== undefined) args.only.push(argv[++i]!);
    else {
      process.stderr.write(
        `bench: unknown argument ${arg}\nusage: run.js [--write] [--quick] [--only NAME]\n`,
      );
      process.exit(2);
    }
  }
  return args;
}

interface Machine {
  cpus: number;
  cpuModel: string;
  memory: string;
  node: string;
  os: string;
  date: string;
  commit: string;
  dataFs: string;
  load: string;
}

/** The file system the agents' data dirs live on (from /proc/mounts), e.g. "ext4 (/dev/vda on /)". */
function dataFileSystem(): string {
  const dir = process.env.BENCH_DIR || tmpdir();
  try {
    let best: { mount: string; text: string } | undefined;
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [device, mount, fsType] = line.split(' ');
      if (device === undefined || mount === undefined || fsType === undefined) continue;
      const inside = dir === mount || dir.startsWith(mount.endsWith('/') ? mount : `${mount}/`);
      if (inside && (best === undefined || mount.length > best.mount.length)) {
        best = { mount, text: `${fsType} (${device} on ${mount})` };
      }
    }
    return `${dir}: ${best?.text ?? 'unknown'}`;
  } catch {
    return `${dir}: unknown`;
  }
}

function loadAverage(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

function machine(loadAtStart: string): Machine {
  let cpuModel = cpus()[0]?.model ?? 'unknown';
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    cpuModel = /^model name\s*:\s*(.+)$/m.exec(info)?.[1]?.trim() ?? cpuModel;
  } catch {
    // not Linux
  }
  let commit = 'unknown';
  try {
    const git = (args: string[]): string =>
      execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    commit = git(['rev-parse', '--short', 'HEAD']);
    if (git(['status', '--porcelain', '--', 'src']) !== '')
      commit += ' + uncommitted changes in src/';
  } catch {
    // not a git checkout
  }
  return {
    cpus: availableParallelism(),
    cpuModel,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    node: process.version,
    os: `${type()} ${release()}`,
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    commit,
    dataFs: dataFileSystem(),
    load: loadAtStart,
  };
}

function unitDigits(m: Measurement): number | undefined {
  if (m.unit === 'tasks') return 0;
  return m.unit === 'ops/s' || m.unit === 'MB/s' ? (m.value >= 100 ? 0 : 1) : undefined;
}

function row(m: Measurement): {
  metric: string;
  measured: string;
  aim: string;
  ratio: string;
  verdict: string;
} {
  const measured = m.missing !== undefined ? m.missing : `${fmt(m.value, unitDigits(m))} ${m.unit}`;
  if (m.aim === undefined)
    return { metric: m.metric, measured, aim: '—', ratio: '—', verdict: '—' };
  return {
    metric: m.metric,
    measured,
    aim: `${{ '>=': '≥', '<=': '≤', '=': '=' }[m.aim.op]} ${fmt(m.aim.value, Number.isInteger(m.aim.value) ? 0 : 2)} ${m.unit}`,
    // An aim of 0 (tasks lost) has no ratio.
    ratio: m.aim.value === 0 ? '—' : fmt(m.value / m.aim.value, 2),
    verdict: meets(m.value, m.aim) ? 'meets' : 'misses',
  };
}

function printTable(results: Measurement[]): void {
  const rows = results.map(row);
  const head = {
    metric: 'benchmark',
    measured: 'measured',
    aim: 'aim',
    ratio: 'measured/aim',
    verdict: '',
  };
  const all = [head, ...rows];
  const width = (k: keyof typeof head): number => Math.max(...all.map((r) => r[k].length));
  const line = (r: typeof head): string =>
    `${r.metric.padEnd(width('metric'))}  ${r.measured.padStart(width('measured'))}  ${r.aim.padStart(width('aim'))}  ${r.ratio.padStart(width('ratio'))}  ${r.verdict}`;
  process.stdout.write(`\n${line(head)}\n${'-'.repeat(line(head).length)}\n`);
  for (const r of rows) process.stdout.write(`${line(r)}\n`);
  process.stdout.write('\n');
}

function markdown(results: Measurement[], m: Machine, seconds: number): string {
  const out: string[] = [];
  out.push('# Benchmarks');
  out.push('');
  out.push(
    'Figures of the latest `npm run bench -- --write` run (written by `bench/run.ts`; do not edit by hand). ' +
      'Each benchmark starts its own real processes on 127.0.0.1 with fresh data dirs: the agent benchmarks one ' +
      '`muster agent` (self-signed TLS) driven by the coordinator-side `AgentClient` from the benchmark process; the ' +
      'coordinator benchmarks a `muster coordinator` with real agents (or, for 5,000 agents, one process simulating ' +
      'them with the real handshake) driven through the REST API and the CLI. Everything shares the machine below. ' +
      'The aims come from the issues; they are reported, not enforced. ' +
      'Ratio = measured / aim (≥ 1 is good for "≥" aims, ≤ 1 for "≤" aims).',
  );
  out.push('');
  out.push('## Results');
  out.push('');
  out.push('| benchmark | measured | aim | measured/aim | verdict | how |');
  out.push('|---|--:|--:|--:|---|---|');
  for (const r of results) {
    const c = row(r);
    out.push(
      `| ${c.metric} | ${c.measured} | ${c.aim} | ${c.ratio} | ${c.verdict} | ${r.detail} |`,
    );
  }
  out.push('');
  out.push('## Machine');
  out.push('');
  out.push('| | |');
  out.push('|---|---|');
  out.push(`| CPUs (\`nproc\`) | ${m.cpus} |`);
  out.push(`| CPU model | ${m.cpuModel} |`);
  out.push(`| memory | ${m.memory} |`);
  out.push(`| OS | ${m.os} |`);
  out.push(`| Node.js | ${m.node} |`);
  out.push(`| date | ${m.date} |`);
  out.push(`| commit | ${m.commit} |`);
  out.push(`| agent data dirs | ${m.dataFs} |`);
  out.push(`| load average before the run (1, 5, 15 min) | ${m.load} |`);
  out.push(`| run time | ${fmt(seconds, 0)} s |`);
  out.push('');
  out.push('## How to run');
  out.push('');
  out.push('```');
  out.push(
    'npm run bench                                  # build, run everything, print the table (a few minutes)',
  );
  out.push(
    'npm run bench -- --write                       # ... and rewrite this file (or BENCH_WRITE=1)',
  );
  out.push(
    'node dist/bench/run.js --only sync --quick     # one benchmark, smaller counts (after a build)',
  );
  out.push(
    'BENCH_AGENT_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" node dist/bench/run.js --only throughput',
  );
  out.push(
    'BENCH_CC_PROJECTS=lua5.4 BENCH_CC_PEERS=cold,known BENCH_CC_ROUNDS=7 node dist/bench/run.js --only "compile peers"',
  );
  out.push('```');
  out.push('');
  out.push(
    "Run it on an otherwise idle machine: the client, the agent, its host process and the agent's file-system " +
      'threads share the CPUs, so other load (see the load average above; the benchmarks themselves add 3 to 8) moves the figures. Each task makes and ' +
      '(when released) removes a work dir, so the no-op figures also depend on the file system and its recent ' +
      'history (ext4 slows down inode allocation right after many deletions); `BENCH_DIR=/some/dir` puts the ' +
      "agents' data dirs elsewhere.",
  );
  out.push('');
  out.push('## What each benchmark measures');
  out.push('');
  out.push('| benchmark | source | what is measured |');
  out.push('|---|---|---|');
  const sources: Record<string, string> = {
    [coldSync.name]: 'bench/agent-sync.ts',
    [reSync.name]: 'bench/agent-sync.ts',
    [noopLatency.name]: 'bench/agent-ops.ts',
    [noopThroughput.name]: 'bench/agent-ops.ts',
    [stalledConnections.name]: 'bench/agent-stalled.ts',
    [coordinatorLatency.name]: 'bench/coordinator.ts',
    [coordinatorThroughput.name]: 'bench/coordinator.ts',
    [coordinatorManyAgents.name]: 'bench/coordinator.ts',
    [cBuild.name]: 'bench/coordinator-c-build.ts',
    [ccPeers.name]: 'bench/cc-peers.ts',
    [ccHotPath.name]: 'bench/cc-hot-path.ts',
    [ccHeaderEdit.name]: 'bench/cc-header-edit.ts',
    [haFailover.name]: 'bench/ha.ts',
  };
  for (const b of benchmarks)
    out.push(`| ${b.name} | \`${sources[b.name] ?? ''}\` | ${b.describe} |`);
  out.push('');
  return out.join('\n');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const selected = benchmarks.filter(
    (b) => args.only.length === 0 || args.only.some((o) => b.name.includes(o)),
  );
  if (selected.length === 0) {
    process.stderr.write(`bench: no benchmark matches ${args.only.join(', ')}\n`);
    process.exit(2);
  }
  const loadAtStart = loadAverage();
  const started = performance.now();
  const results: Measurement[] = [];
  const failures: string[] = [];
  for (const b of selected) {
    process.stdout.write(`== ${b.name}\n`);
    const t0 = performance.now();
    try {
      results.push(
        ...(await b.run({
          quick: args.quick,
          log: (text) => process.stdout.write(`   ${text}\n`),
        })),
      );
    } catch (err) {
      failures.push(b.name);
      process.stderr.write(
        `bench: ${b.name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
    }
    process.stdout.write(`   (${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
  }
  const seconds = (performance.now() - started) / 1000;
  printTable(results);
  for (const f of failures) process.stdout.write(`FAILED: ${f}\n`);
  const m = machine(loadAtStart);
  process.stdout.write(
    `${m.cpus} CPUs (${m.cpuModel}), ${m.memory}, Node ${m.node}, ${m.date}, ${fmt(seconds, 0)} s\n` +
      `data dirs ${m.dataFs}; load average before the run ${m.load}\n`,
  );
  if (args.write) {
    if (args.quick || args.only.length > 0) {
      process.stdout.write('not writing docs/benchmarks.md: --quick or --only runs are partial\n');
    } else if (failures.length > 0) {
      process.stdout.write('not writing docs/benchmarks.md: a benchmark failed\n');
    } else {
      writeFileSync(docsPath, markdown(results, m, seconds));
      process.stdout.write(`wrote ${docsPath}\n`);
    }
  }
  process.exitCode = failures.length > 0 ? 1 : 0;
}

await main();
