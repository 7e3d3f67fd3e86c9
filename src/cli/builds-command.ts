/** `muster builds list|show|logs|cancel|delete`: builds on the coordinator. */
import type { Command } from 'commander';
import type { BuildSummary, BuildView } from '../api/views/builds.js';
import type { BuildStatus } from '../api/status.js';
import { MusterError } from '../protocol/errors.js';
import { connect } from './api-client.js';
import { parseBuildId, parsePositiveInt } from './args.js';
import { BuildDisplay, summaryLine } from './build-display.js';
import { EXIT_INTERRUPTED } from './exit-codes.js';
import { followBuild, hasEnded } from './follow.js';
import { formatDuration, formatTable, formatTimestamp } from '../api/format.js';
import { printJson } from './print-json.js';

const STATUSES: readonly BuildStatus[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];

export function registerBuildsCommand(program: Command): void {
  const builds = program.command('builds').description('list, inspect, cancel and delete builds');

  builds
    .command('list')
    .description('list recent builds, newest first')
    .option('--status <status>', `only builds in this state (${STATUSES.join(', ')})`)
    .option('--limit <n>', 'at most this many', '20')
    .option('--before <id>', 'only builds older than this one (for paging)')
    .option('--search <text>', 'only builds whose name or user contains TEXT, or number is TEXT')
    .option('--json', 'print JSON')
    .action(
      async (opts: {
        status?: string;
        limit: string;
        before?: string;
        search?: string;
        json?: boolean;
      }) => {
        const status = opts.status === undefined ? undefined : parseStatus(opts.status);
        const limit = parsePositiveInt(opts.limit, '--limit');
        const before = opts.before === undefined ? undefined : parseBuildId(opts.before);
        const client = await connect();
        const list = await client.listBuilds({ status, limit, before, q: opts.search });
        if (opts.json) {
          printJson(list);
          return;
        }
        process.stdout.write(formatBuilds(list, status));
      },
    );

  builds
    .command('show')
    .description('a build and its tasks')
    .argument('<id>', 'the build')
    .option(
      '--json',
      'print JSON: { id, status, tasks: [ { name, status, exitCode, agent, attempts, … } ], … }',
    )
    .action(async (id: string, opts: { json?: boolean }) => {
      const client = await connect();
      const build = await client.getBuild(parseBuildId(id));
      if (opts.json) {
        printJson(build);
        return;
      }
      process.stdout.write(formatBuild(build));
    });

  builds
    .command('logs')
    .description("a build's log output, of every task or one")
    .argument('<id>', 'the build')
    .argument('[task]', 'only this task')
    .option('-f, --follow', 'keep printing until the build ends')
    .action(async (id: string, task: string | undefined, opts: { follow?: boolean }) => {
      const buildId = parseBuildId(id);
      const client = await connect();
      const display = new BuildDisplay(process.stdout, {
        tty: false,
        progress: false,
        prefix: task === undefined,
        task,
      });
      if (opts.follow) {
        const onInterrupt = (): void => {
          display.finish();
          process.exit(EXIT_INTERRUPTED);
        };
        process.on('SIGINT', onInterrupt);
        try {
          await followBuild(client, buildId, display, { task });
        } finally {
          process.off('SIGINT', onInterrupt);
        }
        return;
      }
      let after = 0;
      for (;;) {
        const page = await client.buildLogs(buildId, { task, after, limit: 1000 });
        for (const chunk of page.chunks) display.log(chunk);
        if (page.chunks.length === 0 || page.next <= after) break;
        after = page.next;
      }
      display.finish();
    });

  builds
    .command('cancel')
    .description('cancel a queued or running build (running tasks are stopped)')
    .argument('<id>', 'the build')
    .option('--json', 'print the build as JSON')
    .action(async (id: string, opts: { json?: boolean }) => {
      const client = await connect();
      const build = await client.cancelBuild(parseBuildId(id));
      if (opts.json) {
        printJson(build);
        return;
      }
      process.stdout.write(
        hasEnded(build.status)
          ? `Build ${build.id} ${build.status}\n`
          : `Build ${build.id} is being cancelled (${build.status})\n`,
      );
    });

  builds
    .command('delete')
    .description(
      'delete an ended build with its tasks, attempts and logs (admins; cancel a running one first)',
    )
    .argument('<id>', 'the build')
    .action(async (id: string) => {
      const buildId = parseBuildId(id);
      const client = await connect();
      await client.deleteBuild(buildId);
      process.stdout.write(`Build ${buildId} deleted\n`);
    });
}

function parseStatus(raw: string): BuildStatus {
  const status = STATUSES.find((s) => s === raw);
  if (!status) {
    throw new MusterError(
      'INVALID_CONFIG',
      `--status "${raw}" is not one of ${STATUSES.join(', ')}`,
    );
  }
  return status;
}

export function formatBuilds(list: BuildSummary[], status?: BuildStatus): string {
  if (list.length === 0) {
    return status === undefined
      ? 'No builds yet: muster run PLAN starts one\n'
      : `No ${status} builds\n`;
  }
  const rows = list.map((b) => [
    String(b.id),
    b.status,
    `${b.counts.succeeded}/${b.counts.total}${b.counts.failed > 0 ? ` (${b.counts.failed} failed)` : ''}`,
    formatTimestamp(b.createdAt),
    b.createdBy,
    b.name ?? '',
  ]);
  return formatTable(['ID', 'STATUS', 'TASKS', 'CREATED', 'BY', 'NAME'], rows);
}

export function formatBuild(build: BuildView): string {
  let text = `Build ${build.id}${build.name ? ` (${build.name})` : ''}: ${build.status}\n`;
  text += `  created   ${formatTimestamp(build.createdAt)} by ${build.createdBy}\n`;
  if (build.startedAt) text += `  started   ${formatTimestamp(build.startedAt)}\n`;
  if (build.finishedAt) text += `  finished  ${formatTimestamp(build.finishedAt)}\n`;
  if (build.error) text += `  error     ${build.error}\n`;
  text += '\n';
  if (build.kind === 'compile') return text + formatCompileJobs(build);
  if (build.tasks.length === 0) return `${text}No tasks.\n`;
  const rows = build.tasks.map((t) => [
    t.name,
    t.status,
    t.exitCode === null ? '-' : String(t.exitCode),
    t.agent ?? '-',
    String(t.attempts),
    t.durationMs === null ? '-' : formatDuration(t.durationMs),
    t.error ?? '',
  ]);
  text += formatTable(['TASK', 'STATUS', 'EXIT', 'AGENT', 'ATTEMPTS', 'TIME', 'ERROR'], rows);
  if (hasEnded(build.status)) text += `\n${summaryLine(build)}`;
  return text;
}

/** A compile session's jobs (muster build): where each ran, its cache result, its command. */
function formatCompileJobs(build: BuildView): string {
  const s = build.summary;
  let text = s
    ? `  jobs      ${s.jobs}: ${s.remote} on agents, ${s.local} local, ${s.cacheHits} from the cache, ${s.fallbacks} fallbacks\n\n`
    : '';
  if (build.tasks.length === 0) return `${text}No jobs.\n`;
  const rows = build.tasks.map((t) => [
    t.name,
    t.status,
    t.exitCode === null ? '-' : String(t.exitCode),
    (t.placement === 'remote' ? t.agent : t.placement) ?? '-',
    t.cache ?? '-',
    t.durationMs === null ? '-' : formatDuration(t.durationMs),
    t.fallback ? `${t.label ?? ''} (fallback: ${t.fallback})` : (t.label ?? ''),
  ]);
  text += formatTable(['JOB', 'STATUS', 'EXIT', 'RAN', 'CACHE', 'TIME', 'COMMAND'], rows);
  return text;
}
