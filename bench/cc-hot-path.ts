/**
 * The launcher's cost for a cache hit, whole process as make sees it (fork, exec of the native
 * launcher, one round trip to the compile service, the object and depfile written, exit),
 * measured with bench/native/time-runs.c inside `muster build` (its in-process service, warm
 * after the first compile) on examples/c-make's main.c, next to /bin/true (this machine's
 * fork/exec floor) and the compile itself.
 */
import { execFileSync } from 'node:child_process';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mustRun, offlineMusterEnv, stopMusterService } from './cc-peer-processes.js';
import { installedLauncherPaths } from '../src/cli/cc/launch-env.js';
import { sleep } from './coordinator-process.js';
import { fmt, type Benchmark, type Measurement } from './measure.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const BENCHMARK = 'compile launcher';

interface Percentiles {
  runs: number;
  p50: number;
  p90: number;
  min: number;
  max: number;
}

function percentilesIn(output: string, label: string): Percentiles {
  const line = output.split('\n').find((l) => l.includes(`"label":"${label}"`));
  if (line === undefined) throw new Error(`no ${label} timing in:\n${output.slice(-2000)}`);
  return JSON.parse(line.slice(line.indexOf('{'))) as Percentiles;
}

export const ccHotPath: Benchmark = {
  name: BENCHMARK,
  describe:
    'A cache hit through the native launcher, whole process (fork, exec, one Unix-socket round trip to the ' +
    "per-user compile service hosting `muster build`, object and depfile written, exit), timed by bench/native/time-runs.c's " +
    'fork/exec/wait loop, 200 runs (50 with --quick) of `gcc -c src/main.c` in examples/c-make, no coordinator ' +
    '(the local tier serves it); beside it /bin/true (the fork/exec floor) and the real compile.',
  async run(ctx) {
    const runs = ctx.quick ? 50 : 200;
    const dir = await mkdtemp(join(tmpdir(), 'muster-bench-hot-'));
    try {
      const timeRuns = join(dir, 'time-runs');
      execFileSync('cc', [
        '-O2',
        '-std=c99',
        '-D_POSIX_C_SOURCE=200809L',
        '-o',
        timeRuns,
        join(root, 'bench/native/time-runs.c'),
      ]);
      const project = join(dir, 'c-make');
      await cp(join(root, 'examples/c-make'), project, { recursive: true });
      // Files changed in the last 2 s are never cached (the too-new rule).
      await sleep(2100);
      const gcc = join(installedLauncherPaths().masquerade, 'gcc');
      const compile = `${gcc} -Iinclude -MMD -MP -O2 -Wall -c src/main.c -o main.o`;
      const script = [
        `${compile}`,
        `printf '{"label":"true",'; ${timeRuns} ${runs} /bin/true | cut -c2-`,
        `printf '{"label":"hit",'; ${timeRuns} ${runs} ${compile} | cut -c2-`,
        `printf '{"label":"gcc",'; ${timeRuns} ${Math.max(5, runs / 20)} $(command -v gcc) -Iinclude -MMD -MP -O2 -Wall -c src/main.c -o main.o | cut -c2-`,
      ].join(' && ');
      const env = offlineMusterEnv(dir);
      const result = await mustRun(
        'muster build -- time-runs',
        join(root, 'bin/muster'),
        ['build', '--', 'sh', '-c', script],
        { cwd: project, env },
      );
      const floor = percentilesIn(result.output, 'true');
      const hit = percentilesIn(result.output, 'hit');
      const gccRun = percentilesIn(result.output, 'gcc');
      const ms = (us: number): number => us / 1000;
      const rows: Measurement[] = [
        {
          benchmark: BENCHMARK,
          metric: 'launcher overhead for a cache hit, whole process, p50',
          value: ms(hit.p50),
          unit: 'ms',
          aim: { op: '<=', value: 10 },
          detail: `${hit.runs} runs: p90 ${fmt(ms(hit.p90))} ms, min ${fmt(ms(hit.min))} ms; /bin/true p50 ${fmt(ms(floor.p50))} ms (p90 ${fmt(ms(floor.p90))}); the compile itself p50 ${fmt(ms(gccRun.p50))} ms over ${gccRun.runs} runs`,
        },
      ];
      for (const row of rows)
        ctx.log(`${row.metric}: ${fmt(row.value)} ${row.unit}; ${row.detail}`);
      return rows;
    } finally {
      await stopMusterService(offlineMusterEnv(dir));
      await rm(dir, { recursive: true, force: true });
    }
  },
};
