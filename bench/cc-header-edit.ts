/**
 * One header edited: Lua 5.4 (Debian source) built through `muster build -- make -j2 linux`
 * (this machine's cache only, no coordinator), one header's content changed, built again: the
 * compiles that missed the cache ÷ the files that include the header (by gcc's own `-MM`), which
 * must be exactly 1 — fewer would be a stale object served, more a recompile the cache should
 * have saved (make itself reruns every compile its Makefile ties to the header).
 */
import { appendFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mustRun, offlineMusterEnv, stopMusterService } from './cc-peer-processes.js';
import { lua, projectTree } from './cc-projects.js';
import { sleep } from './coordinator-process.js';
import type { Benchmark, Measurement } from './measure.js';

const BENCHMARK = 'compile header edit';
const HEADER = 'lopcodes.h';
const muster = fileURLToPath(new URL('../../bin/muster', import.meta.url));

interface Summary {
  compiles: number;
  cacheHits: number;
  cacheMisses: number;
}

export const ccHeaderEdit: Benchmark = {
  name: BENCHMARK,
  describe:
    `Lua 5.4.4 from Debian source, \`muster build -- make -j2 linux\` with no coordinator (the cache on this ` +
    `machine), then src/${HEADER} edited (a comment appended) and built again: compiles that missed the cache ÷ ` +
    `the .c files that include it (gcc -MM).`,
  async run(ctx) {
    const dir = await mkdtemp(join(tmpdir(), 'muster-bench-header-'));
    try {
      const tree = await projectTree(lua, join(dir, 'lua'));
      const env = offlineMusterEnv(dir);
      const build = async (): Promise<Summary> => {
        const result = await mustRun(
          'muster build -- make',
          muster,
          ['build', '--json', '--', 'make', ...lua.buildArgs(2)],
          { cwd: tree, env },
        );
        const json = /\{\s*"buildId"[\s\S]*\}\s*$/.exec(result.output)?.[0];
        if (json === undefined) throw new Error(`no summary in:\n${result.output.slice(-2000)}`);
        return JSON.parse(json) as Summary;
      };
      // Files changed in the last 2 s are not cached (the too-new rule): let the tree settle.
      await sleep(2100);
      const first = await build();
      await appendFile(join(tree, 'src', HEADER), '/* edited */\n');
      await sleep(2100);
      const second = await build();
      const sources = (await readdir(join(tree, 'src'))).filter((f) => f.endsWith('.c'));
      let includers = 0;
      for (const source of sources) {
        const deps = await mustRun('gcc -MM', 'gcc', ['-std=gnu99', '-MM', source], {
          cwd: join(tree, 'src'),
        });
        if (deps.output.split(/\s+/).includes(HEADER)) includers++;
      }
      const row: Measurement = {
        benchmark: BENCHMARK,
        metric: `one header edited (Lua's ${HEADER}): compiles redone ÷ files that include it`,
        value: second.cacheMisses / includers,
        unit: 'x',
        aim: { op: '=', value: 1 },
        detail:
          `${second.cacheMisses} compiles missed the cache, ${second.cacheHits} hits, of the ${second.compiles} ` +
          `make ran again; ${includers} of ${sources.length} .c files include ${HEADER}; first build: ` +
          `${first.compiles} compiles, ${first.cacheMisses} misses`,
      };
      ctx.log(`${row.metric}: ${row.value}; ${row.detail}`);
      return [row];
    } finally {
      await stopMusterService(offlineMusterEnv(dir));
      await rm(dir, { recursive: true, force: true });
    }
  },
};
