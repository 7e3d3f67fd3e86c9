/**
 * `muster run` as users run it, against a fake coordinator: what it uploads, how it follows the
 * build (events, logs, polling), the outputs it writes, its exit codes and its --json output.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { BuildView, LogChunkView, LogsView, TaskView } from '../../src/api/views/builds.js';
import type { BuildStatus } from '../../src/api/status.js';
import { FakeCoordinator, runCli, type SseWriter } from '../helpers/cli-fake-coordinator.js';

const PLAN = `name: demo
tasks:
  compile:
    run: cat src/*.c > app.bin
    inputs: ["src/*.c", "./README"]
    outputs: [app.bin]
  test:
    run: ./app.bin
    needs: [compile]
`;

const dirs: string[] = [];
let fake: FakeCoordinator;
/** Where the CLI may remember backups (never the real ~/.config). */
let configDir: string;

function sha(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

async function project(plan = PLAN): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'muster-run-'));
  dirs.push(dir);
  await writeFile(join(dir, 'muster.yml'), plan);
  await mkdir(join(dir, 'src'));
  await writeFile(join(dir, 'src', 'a.c'), 'int a;\n');
  await writeFile(join(dir, 'src', 'b.c'), 'int b;\n');
  await writeFile(join(dir, 'README'), 'read me\n');
  await mkdir(join(dir, 'node_modules', 'src'), { recursive: true });
  await writeFile(join(dir, 'node_modules', 'src', 'x.c'), 'not an input\n');
  return dir;
}

function env(): NodeJS.ProcessEnv {
  return { MUSTER_URL: fake.url, MUSTER_TOKEN: 'test-token', MUSTER_CONFIG_DIR: configDir };
}

function task(name: string, status: TaskView['status'], extra: Partial<TaskView> = {}): TaskView {
  const ended = status === 'succeeded' || status === 'failed';
  return {
    name,
    status,
    exitCode: ended ? (status === 'succeeded' ? 0 : 1) : null,
    agent: status === 'pending' || status === 'queued' ? null : 'agent-1',
    attempts: status === 'pending' || status === 'queued' ? 0 : 1,
    needs: [],
    startedAt: status === 'pending' ? null : '2024-01-01T12:00:00.000Z',
    finishedAt: ended ? '2024-01-01T12:00:00.400Z' : null,
    durationMs: ended ? 400 : null,
    outputs: [],
    error: null,
    label: null,
    cache: null,
    placement: null,
    fallback: null,
    ...extra,
  };
}

function buildView(status: BuildStatus, tasks: TaskView[]): BuildView {
  return {
    id: 12,
    name: 'demo',
    status,
    createdBy: 'admin',
    createdAt: '2024-01-01T12:00:00.000Z',
    startedAt: '2024-01-01T12:00:00.000Z',
    finishedAt: status === 'succeeded' || status === 'failed' ? '2024-01-01T12:00:01.000Z' : null,
    error: null,
    tasks,
    kind: 'plan',
    summary: null,
  };
}

function chunk(id: number, taskName: string, text: string): LogChunkView {
  return { id, task: taskName, attempt: 1, stream: 'stdout', text, at: '2024-01-01T12:00:00.000Z' };
}

interface Scenario {
  /** What GET /builds/12 answers: the current state. */
  current: BuildView;
  /** Chunks GET /logs knows. */
  logs: LogChunkView[];
  /** Runs when the CLI subscribes to the events (undefined: answer 503). */
  onEvents?: (sse: SseWriter, scenario: Scenario) => void;
}

/** Routes for one run; the blobs the coordinator already has are `known`. */
function serve(scenario: Scenario, known: Set<string>, blobs: Map<string, Buffer>): void {
  fake.on('POST', '/blobs/missing', (req) => ({
    json: { missing: req.json<{ hashes: string[] }>().hashes.filter((h) => !known.has(h)) },
  }));
  fake.on('PUT', '/blobs/:sha', (req) => {
    known.add(req.params.sha ?? '');
    return { status: 204 };
  });
  fake.on('GET', '/blobs/:sha', (req) => {
    const blob = blobs.get(req.params.sha ?? '');
    return blob
      ? { raw: blob }
      : { status: 404, json: { error: { code: 'NOT_FOUND', message: 'no blob' } } };
  });
  fake.on('POST', '/builds', () => ({
    status: 201,
    json: buildView('queued', [task('compile', 'queued'), task('test', 'pending')]),
  }));
  fake.on('GET', '/builds/:id', () => ({ json: scenario.current }));
  fake.on('GET', '/builds/:id/logs', (req) => {
    const afterId = Number(req.query.get('after') ?? 0);
    const chunks = scenario.logs.filter((c) => c.id > afterId);
    const view: LogsView = { chunks, next: chunks.at(-1)?.id ?? afterId };
    return { json: view };
  });
  fake.on('GET', '/events', (req, res) => {
    assert.equal(req.query.get('build'), '12');
    if (!scenario.onEvents) {
      return { status: 503, json: { error: { code: 'UNREACHABLE', message: 'no events here' } } };
    }
    scenario.onEvents(fake.sse(res), scenario);
    return undefined;
  });
}

/** A build that succeeds: early output (only in GET /logs), then events with more. */
function succeedingScenario(output: Buffer, outputMode = 0o755): Scenario {
  const outputs = [{ path: 'app.bin', sha256: sha(output), size: output.length, mode: outputMode }];
  const scenario: Scenario = {
    current: buildView('running', [task('compile', 'running'), task('test', 'pending')]),
    logs: [chunk(1, 'compile', 'early output\n')],
    onEvents: (sse, s) => {
      // The stream repeats chunk 1 (the CLI must print it once) and brings new ones, which
      // GET /logs does not know: they reach the CLI only through the stream.
      sse.send('log', { buildId: 12, ...chunk(1, 'compile', 'early output\n') });
      sse.send('log', { buildId: 12, ...chunk(2, 'compile', 'compiled ') });
      sse.send('log', { buildId: 12, ...chunk(3, 'compile', 'ok\n') });
      const compile = task('compile', 'succeeded', { outputs });
      sse.send('task', { buildId: 12, task: compile });
      sse.send('task', { buildId: 12, task: task('test', 'running') });
      setTimeout(() => {
        sse.send('log', { buildId: 12, ...chunk(4, 'test', 'all tests passed\n') });
        const done = task('test', 'succeeded');
        s.current = buildView('succeeded', [compile, done]);
        sse.send('task', { buildId: 12, task: done });
        sse.send('build', { id: 12, status: 'succeeded' });
      }, 200);
    },
  };
  return scenario;
}

before(async () => {
  fake = await FakeCoordinator.start();
  configDir = await mkdtemp(join(tmpdir(), 'muster-run-config-'));
  dirs.push(configDir);
});
afterEach(() => {
  fake.requests.length = 0;
});
after(async () => {
  await fake.close();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('muster run', () => {
  it('uploads only missing blobs, follows the build, writes the outputs and exits 0', async () => {
    const dir = await project();
    const output = Buffer.from('#!/bin/sh\necho app\n');
    const known = new Set([sha('int b;\n')]);
    serve(succeedingScenario(output), known, new Map([[sha(output), output]]));
    await writeFile(join(dir, 'app.bin'), 'stale');

    const result = await runCli(['run'], { cwd: dir, env: env() });
    assert.equal(result.code, 0, result.stderr);

    const puts = fake.requests.filter((r) => r.method === 'PUT').map((r) => r.path);
    assert.deepEqual(
      puts.sort(),
      [`/api/v1/blobs/${sha('int a;\n')}`, `/api/v1/blobs/${sha('read me\n')}`].sort(),
    );
    const submitted = fake
      .calls('POST', '/builds')[0]
      ?.json<{ plan: string; files: { path: string }[] }>();
    assert.equal(submitted?.plan, PLAN);
    assert.deepEqual(
      submitted?.files.map((f) => f.path),
      ['README', 'src/a.c', 'src/b.c'],
    );

    const lines = result.stdout.split('\n');
    assert.equal(lines.filter((l) => l === 'compile | early output').length, 1, result.stdout);
    assert.ok(lines.includes('compile | compiled ok'), result.stdout);
    assert.ok(lines.includes('test | all tests passed'), result.stdout);
    assert.match(
      result.stdout,
      /^\[\d\d:\d\d:\d\d\] task compile succeeded on agent-1 \(0\.4 s\)$/m,
    );
    assert.match(result.stdout, /^Build 12 succeeded/m);

    assert.deepEqual(await readFile(join(dir, 'app.bin')), output);
    assert.equal((await stat(join(dir, 'app.bin'))).mode & 0o777, 0o755);
  });

  it('--json prints only the final build on stdout', async () => {
    const dir = await project();
    const output = Buffer.from('binary');
    const scenario = succeedingScenario(output, 0o644);
    serve(scenario, new Set(), new Map([[sha(output), output]]));
    const result = await runCli(['run', join(dir, 'muster.yml'), '--json'], { env: env() });
    assert.equal(result.code, 0, result.stderr);
    const printed = JSON.parse(result.stdout) as BuildView;
    assert.deepEqual(printed, scenario.current);
    assert.equal(printed.status, 'succeeded');
    assert.deepEqual(
      printed.tasks.map((t) => [t.name, t.status, t.exitCode, t.agent, t.attempts]),
      [
        ['compile', 'succeeded', 0, 'agent-1', 1],
        ['test', 'succeeded', 0, 'agent-1', 1],
      ],
    );
    assert.match(result.stderr, /compile \| early output/, 'progress and logs go to stderr');
  });

  it('exits 1 when the build fails, and polls when there is no event stream', async () => {
    const dir = await project();
    const scenario: Scenario = {
      current: buildView('running', [task('compile', 'running'), task('test', 'pending')]),
      logs: [chunk(1, 'compile', 'cc: error\n')],
    };
    serve(scenario, new Set(), new Map());
    const run = runCli(['run'], { cwd: dir, env: env() });
    await run.waitFor(/compile \| cc: error/);
    scenario.current = buildView('failed', [
      task('compile', 'failed', { exitCode: 2, error: 'exit code 2' }),
      task('test', 'skipped'),
    ]);
    const result = await run;
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stdout, /task compile failed on agent-1 \(exit code 2, 0\.4 s\)$/m);
    assert.match(result.stdout, /^Build 12 failed.*1 failed \(compile\)/m);
    assert.ok(fake.calls('GET', '/builds/12').length >= 2, 'it polled');
  });

  it('keeps following by polling when the event stream drops', async () => {
    const dir = await project();
    const scenario: Scenario = {
      current: buildView('running', [task('compile', 'running'), task('test', 'pending')]),
      logs: [],
      onEvents: (sse) => sse.end(),
    };
    serve(scenario, new Set(), new Map());
    const run = runCli(['run', '--json'], { cwd: dir, env: env() });
    await run.waitFor(/Build 12 submitted/);
    setTimeout(() => {
      scenario.logs.push(chunk(5, 'compile', 'late line\n'));
      scenario.current = buildView('succeeded', [
        task('compile', 'succeeded'),
        task('test', 'succeeded'),
      ]);
    }, 300);
    const result = await run;
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /compile \| late line/);
    assert.equal((JSON.parse(result.stdout) as BuildView).status, 'succeeded');
  });

  it('--detach submits and returns', async () => {
    const dir = await project();
    serve(succeedingScenario(Buffer.from('x')), new Set(), new Map());
    const result = await runCli(['run', '--detach'], { cwd: dir, env: env() });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'Build 12 submitted\n');
    assert.equal(fake.calls('GET', '/events').length, 0);
  });

  it('Ctrl-C stops following, not the build: exit 130', async () => {
    const dir = await project();
    const scenario: Scenario = {
      current: buildView('running', [task('compile', 'running'), task('test', 'pending')]),
      logs: [],
      onEvents: () => undefined, // open, silent
    };
    serve(scenario, new Set(), new Map());
    const run = runCli(['run'], { cwd: dir, env: env() });
    await run.waitFor(/Build 12 submitted/);
    // Let it subscribe before interrupting.
    await new Promise((resolve) => setTimeout(resolve, 300));
    run.kill('SIGINT');
    const result = await run;
    assert.equal(result.code, 130, result.stderr);
    assert.match(
      result.stderr,
      /build 12 continues on the coordinator; muster builds cancel 12 to stop it/,
    );
    assert.equal(fake.calls('POST', '/builds/12/cancel').length, 0);
  });

  it('refuses outputs with unsafe paths: exit 2, nothing written', async () => {
    const dir = await project();
    const evil = Buffer.from('evil');
    const scenario: Scenario = {
      current: buildView('succeeded', [
        task('compile', 'succeeded', {
          outputs: [
            { path: 'fine.txt', sha256: sha(evil), size: 4, mode: 0o644 },
            { path: '../escaped.txt', sha256: sha(evil), size: 4, mode: 0o644 },
          ],
        }),
        task('test', 'succeeded'),
      ]),
      logs: [],
      onEvents: () => undefined,
    };
    serve(scenario, new Set(), new Map([[sha(evil), evil]]));
    const result = await runCli(['run'], { cwd: dir, env: env() });
    assert.equal(result.code, 2);
    assert.match(
      result.stderr,
      /output path "\.\.\/escaped\.txt" has a "\.\." segment \[INVALID_PATH\]/,
    );
    await assert.rejects(stat(join(dir, 'fine.txt')), { code: 'ENOENT' });
    await assert.rejects(stat(join(dir, '..', 'escaped.txt')), { code: 'ENOENT' });
  });

  it('an input pattern that matches nothing: exit 2 naming it, nothing sent', async () => {
    const dir = await project(PLAN.replace('"./README"', '"docs/**/*.md"'));
    const result = await runCli(['run'], { cwd: dir, env: env() });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /\[PLAN_INVALID\]/);
    assert.match(result.stderr, /^ {2}- input "docs\/\*\*\/\*\.md" matches no file$/m);
    assert.equal(fake.requests.length, 0);
  });

  it('a plan with problems: exit 2 listing every problem, nothing sent', async () => {
    const dir = await project('tasks:\n  a:\n    rnu: x\n  b:\n    run: y\n    needs: [c]\n');
    const result = await runCli(['run'], { cwd: dir, env: env() });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^muster: Plan muster\.yml has \d+ problems: \[PLAN_INVALID\]$/m);
    assert.match(
      result.stderr,
      /^ {2}- tasks\.a\.rnu: unknown key; did you mean "run"\? \(line 3\)$/m,
    );
    assert.match(result.stderr, /^ {2}- tasks\.b\.needs: unknown task "c"/m);
    assert.equal(fake.requests.length, 0);
  });

  it('builds logs --follow prints the logs until the build ends, without progress', async () => {
    serve(succeedingScenario(Buffer.from('x')), new Set(), new Map());
    const result = await runCli(['builds', 'logs', '12', '--follow'], { env: env() });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      result.stdout,
      'compile | early output\ncompile | compiled ok\ntest | all tests passed\n',
    );
  });

  it('a missing plan file: exit 2 saying what to do', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'muster-run-'));
    dirs.push(dir);
    const result = await runCli(['run'], { cwd: dir, env: env() });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /no plan at muster\.yml: name a plan file/);
  });
});
