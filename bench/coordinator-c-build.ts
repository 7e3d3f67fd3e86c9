/**
 * The example C build (examples/c-many) through Muster — `muster run` against a coordinator with
 * two local agents — against plain `make -j` on the same machine, as a ratio of wall times.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AttemptView, BuildView } from '../src/api/views/builds.js';
import { cliPath, withAgents, withCoordinator } from './coordinator-process.js';
import { fmt, list, median, now, type Benchmark, type Measurement } from './measure.js';

const generator = fileURLToPath(new URL('../../examples/c-many/generate.js', import.meta.url));

interface Finished {
  code: number | null;
  ms: number;
  stdout: string;
  stderr: string;
}

function run(
  command: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv },
): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const start = now();
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, ms: now() - start, stdout, stderr }));
  });
}

async function must(
  what: string,
  command: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv },
): Promise<Finished> {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    throw new Error(`${what} exited with ${result.code}: ${result.stderr || result.stdout}`);
  }
  return result;
}

/** Removes what either build produces (objects, the program, the test's output). */
function clean(dir: string): void {
  for (const name of readdirSync(dir)) {
    if (name.endsWith('.o') || name === 'many' || name === 'actual.txt')
      rmSync(join(dir, name), { force: true });
  }
}

export const cBuild: Benchmark = {
  name: 'C build vs make',
  describe:
    '`examples/c-many/generate.js --files 40` (40 generated C files of 24 functions + main.c; compile tasks, a link and a ' +
    'test that runs the program) in a temp dir. make: `make -j<nproc> test` from clean. Muster: one coordinator and two ' +
    'local agent processes (TLS) with 1 slot each, so as many compilers run at once as with make -j2; `muster run --json` ' +
    'by the CLI (a new Node process: reads the plan, hashes and uploads missing inputs, submits, follows the event ' +
    'stream, downloads every output), from clean, exit code 0. The first Muster run (inputs uploaded, agents empty) is ' +
    'reported apart; then make and Muster alternate 3 times; medians; ratio = Muster / make.',
  async run(ctx) {
    const files = ctx.quick ? 16 : 40;
    const runs = ctx.quick ? 1 : 3;
    const jobs = availableParallelism();
    const dir = mkdtempSync(join(process.env.BENCH_DIR || tmpdir(), 'muster-bench-c-'));
    try {
      await must(
        'generate.js',
        process.execPath,
        [generator, '--out', dir, '--files', String(files)],
        {
          cwd: dir,
        },
      );
      return await withCoordinator((coordinator) =>
        withAgents(2, async (agents) => {
          for (const [i, agent] of agents.entries())
            await coordinator.addAgent(`agent-${i + 1}`, agent, { slots: 1 });
          await coordinator.waitForAgents(2);
          const env = { MUSTER_URL: coordinator.url, MUSTER_TOKEN: coordinator.token };
          /** Where the build's time went: attempt time on each agent, and the gaps between. */
          const slotGaps = async (id: number): Promise<string> => {
            const { body } = await coordinator.api<AttemptView[]>('GET', `/builds/${id}/attempts`);
            const parts: string[] = [];
            for (const name of [...new Set(body.map((a) => a.agent))].sort()) {
              const mine = body
                .filter((a) => a.agent === name && a.finishedAt !== null)
                .map((a) => ({ start: Date.parse(a.startedAt), end: Date.parse(a.finishedAt!) }))
                .sort((a, b) => a.start - b.start);
              const busy = mine.reduce((n, a) => n + a.end - a.start, 0);
              const gaps = mine.slice(1).reduce((n, a, i) => n + a.start - mine[i]!.end, 0);
              parts.push(
                `${name}: ${mine.length} attempts, ${busy} ms in them, ${gaps} ms between`,
              );
            }
            return parts.join('; ');
          };
          const viaMuster = async (): Promise<{ ms: number; buildMs: number; gaps: string }> => {
            clean(dir);
            const result = await must(
              'muster run',
              process.execPath,
              [cliPath, 'run', 'muster.yml', '--json'],
              { cwd: dir, env },
            );
            if (!existsSync(join(dir, 'many'))) throw new Error('muster run wrote no program');
            const build = JSON.parse(result.stdout) as BuildView;
            const buildMs = Date.parse(build.finishedAt!) - Date.parse(build.createdAt);
            return { ms: result.ms, buildMs, gaps: await slotGaps(build.id) };
          };
          const viaMake = async (): Promise<number> => {
            clean(dir);
            const result = await must('make', 'make', [`-j${jobs}`, 'test'], { cwd: dir });
            if (!existsSync(join(dir, 'many'))) throw new Error('make wrote no program');
            return result.ms;
          };
          const cold = await viaMuster();
          ctx.log(
            `muster, first run: ${fmt(cold.ms / 1000)} s (build created -> finished ${fmt(cold.buildMs / 1000)} s; ${cold.gaps})`,
          );
          const makeTimes: number[] = [];
          const musterTimes: number[] = [];
          const buildTimes: number[] = [];
          for (let i = 0; i < runs; i++) {
            makeTimes.push(await viaMake());
            const warm = await viaMuster();
            musterTimes.push(warm.ms);
            buildTimes.push(warm.buildMs);
            ctx.log(
              `run ${i + 1}/${runs}: make -j${jobs} ${fmt(makeTimes[i]! / 1000)} s, muster ${fmt(warm.ms / 1000)} s ` +
                `(build created -> finished ${fmt(warm.buildMs / 1000)} s; ${warm.gaps})`,
            );
          }
          clean(dir);
          const make = median(makeTimes);
          const muster = median(musterTimes);
          const seconds = (values: number[]): string =>
            list(
              values.map((v) => v / 1000),
              's',
            );
          const what = `${files + 1} C files`;
          const rows: Measurement[] = [
            {
              benchmark: 'C build vs make',
              metric: `C build (${what}): Muster / make -j${jobs} wall time`,
              value: muster / make,
              unit: 'x',
              detail: `medians of ${runs}: Muster ${fmt(muster / 1000)} s, make ${fmt(make / 1000)} s`,
            },
            {
              benchmark: 'C build vs make',
              metric: `C build (${what}) through Muster, 2 local agents x 1 slot: wall time`,
              value: muster / 1000,
              unit: 's',
              detail:
                `median of ${runs}: ${seconds(musterTimes)}; of which build created -> finished ` +
                `${seconds(buildTimes)}`,
            },
            {
              benchmark: 'C build vs make',
              metric: `C build (${what}) through Muster, first run (inputs uploaded, agents empty)`,
              value: cold.ms / 1000,
              unit: 's',
              detail: `build created -> finished ${fmt(cold.buildMs / 1000)} s`,
            },
            {
              benchmark: 'C build vs make',
              metric: `C build (${what}) with make -j${jobs}: wall time`,
              value: make / 1000,
              unit: 's',
              detail: `median of ${runs}: ${seconds(makeTimes)}`,
            },
          ];
          return rows;
        }),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
