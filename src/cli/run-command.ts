/**
 * `muster run [PLAN] [--detach] [--json]`: checks the plan locally, uploads the input files the
 * coordinator lacks (never from outside the plan's directory: inputs.ts), submits the build,
 * follows it, then writes every task's declared outputs into the plan's directory (outputs.ts).
 * Exit 0 only when the build succeeded, 1 when it failed or was cancelled.
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { BuildView } from '../api/views/builds.js';
import { parsePlan, planInputPatterns } from '../api/plan/parse.js';
import { MusterError } from '../protocol/errors.js';
import { connect } from './api-client.js';
import { BuildDisplay, summaryLine } from './build-display.js';
import { EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK } from './exit-codes.js';
import { describeFiles, displayPath, uploadMissing } from './files.js';
import { followBuild } from './follow.js';
import { formatBytes, plural } from '../api/format.js';
import { printJson } from './print-json.js';
import { resolveInputs } from './inputs.js';
import { writeOutputs } from './outputs.js';

interface RunOptions {
  detach?: boolean;
  json?: boolean;
}

export const DEFAULT_PLAN = 'muster.yml';

export function registerRunCommand(program: Command): void {
  program
    .command('run')
    .description('run a build plan on the coordinator and follow it to the end')
    .argument('[plan]', 'the plan file (or a directory with muster.yml)', DEFAULT_PLAN)
    .option('--detach', 'submit the build and return without following it')
    .option('--json', 'print the build as JSON on stdout when it ends (progress goes to stderr)')
    .action(async (plan: string, opts: RunOptions) => {
      process.exitCode = await runPlan(plan, opts);
    });
}

async function runPlan(planArg: string, opts: RunOptions): Promise<number> {
  const planPath = await findPlan(planArg);
  const dir = dirname(planPath);
  const text = await readPlanText(planPath);
  const plan = parsePlan(text, { sourceName: displayPath(planPath) });
  const paths = await resolveInputs(dir, planInputPatterns(plan));
  const client = await connect();
  const out = opts.json ? process.stderr : process.stdout;

  const files = await describeFiles(dir, paths, { confine: true });
  const uploaded = await uploadMissing(client, files);
  if (files.length > 0 && !opts.detach) {
    const sent =
      uploaded.blobs === 0
        ? 'all already on the coordinator'
        : `uploaded ${formatBytes(uploaded.bytes)} (${plural(uploaded.blobs, 'new blob')})`;
    out.write(`Inputs: ${plural(files.length, 'file')}, ${sent}\n`);
  }
  const submitted = await client.createBuild({
    plan: text,
    files: files.map(({ path, sha256, size, mode }) => ({ path, sha256, size, mode })),
  });
  if (opts.detach) {
    if (opts.json) printJson(submitted);
    else process.stdout.write(`Build ${submitted.id} submitted\n`);
    return EXIT_OK;
  }

  out.write(`Build ${submitted.id} submitted: ${plural(submitted.tasks.length, 'task')}\n`);
  const display = new BuildDisplay(out, {
    tty: (out as { isTTY?: boolean }).isTTY === true,
    progress: true,
    prefix: true,
  });
  // Ctrl-C stops following, not the build: it belongs to the coordinator now.
  const onInterrupt = (): void => {
    display.finish();
    process.stderr.write(
      `\nbuild ${submitted.id} continues on the coordinator; muster builds cancel ${submitted.id} to stop it\n`,
    );
    process.exit(EXIT_INTERRUPTED);
  };
  process.on('SIGINT', onInterrupt);
  let build: BuildView;
  try {
    build = await followBuild(client, submitted.id, display);
  } finally {
    process.off('SIGINT', onInterrupt);
  }

  if (build.tasks.some((t) => t.outputs.length > 0)) {
    const written = await writeOutputs(client, dir, plan, build.tasks);
    out.write(
      `Wrote ${plural(written.files, 'output file')} (${formatBytes(written.bytes)}) to ${displayPath(dir)}\n`,
    );
  }
  out.write(summaryLine(build));
  if (opts.json) printJson(build);
  return build.status === 'succeeded' ? EXIT_OK : EXIT_FAILED;
}

/** PLAN as given, or PLAN/muster.yml when it is a directory. */
async function findPlan(planArg: string): Promise<string> {
  const path = resolve(planArg);
  const info = await stat(path).catch(() => undefined);
  return info?.isDirectory() ? join(path, DEFAULT_PLAN) : path;
}

async function readPlanText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new MusterError(
      'INVALID_CONFIG',
      code === 'ENOENT'
        ? `no plan at ${displayPath(path)}: name a plan file (muster run PLAN) or write ${DEFAULT_PLAN}`
        : `cannot read the plan ${displayPath(path)}: ${(err as Error).message}`,
      { path },
      { cause: err },
    );
  }
}
