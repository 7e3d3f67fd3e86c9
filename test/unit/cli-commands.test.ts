/**
 * The client commands (login, agents, extensions, builds, settings, status) as users run them: a
 * real CLI subprocess against a fake coordinator on loopback.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { AgentView } from '../../src/api/views/agents.js';
import type { ToolchainView } from '../../src/api/views/compile.js';
import type { BuildView, LogsView } from '../../src/api/views/builds.js';
import type { LoginView } from '../../src/api/views/users.js';
import type { StatusView } from '../../src/api/views/status.js';
import { FakeCoordinator, apiError, runCli } from '../helpers/cli-fake-coordinator.js';

const dirs: string[] = [];
let fake: FakeCoordinator;
/** Where the CLI may remember backups (never the real ~/.config). */
let configDir: string;

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'muster-cli-'));
  dirs.push(dir);
  return dir;
}

function envFor(url: string): NodeJS.ProcessEnv {
  return { MUSTER_URL: url, MUSTER_TOKEN: 'test-token', MUSTER_CONFIG_DIR: configDir };
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const agent: AgentView = {
  name: 'build-1',
  address: '10.0.0.5:7420',
  status: 'connected',
  slots: 8,
  slotsFrom: 'agent',
  busySlots: 2,
  labels: ['linux', 'x64'],
  tls: true,
  fingerprint: 'AB:CD',
  lastError: null,
  agentVersion: '0.1.0',
  instanceKey: 'muster/abc',
  lastConnectedAt: '2024-01-01T00:00:00.000Z',
  dialsOut: false,
  approved: true,
  facts: null,
};

const build: BuildView = {
  id: 7,
  kind: 'plan',
  summary: null,
  name: 'demo',
  status: 'failed',
  createdBy: 'admin',
  createdAt: '2024-01-01T12:00:00.000Z',
  startedAt: '2024-01-01T12:00:01.000Z',
  finishedAt: '2024-01-01T12:00:05.000Z',
  error: 'link failed',
  tasks: [
    {
      name: 'compile',
      status: 'succeeded',
      exitCode: 0,
      agent: 'build-1',
      attempts: 1,
      needs: [],
      startedAt: '2024-01-01T12:00:01.000Z',
      finishedAt: '2024-01-01T12:00:02.000Z',
      durationMs: 1000,
      outputs: [],
      error: null,
      label: null,
      cache: null,
      placement: null,
      fallback: null,
    },
    {
      name: 'link',
      status: 'failed',
      exitCode: 2,
      agent: 'build-1',
      attempts: 1,
      needs: ['compile'],
      startedAt: '2024-01-01T12:00:02.000Z',
      finishedAt: '2024-01-01T12:00:05.000Z',
      durationMs: 3000,
      outputs: [],
      error: null,
      label: null,
      cache: null,
      placement: null,
      fallback: null,
    },
  ],
};

before(async () => {
  fake = await FakeCoordinator.start();
  configDir = await tempDir();
});
afterEach(() => {
  fake.requests.length = 0;
});
after(async () => {
  await fake.close();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('muster login', () => {
  it('saves the token with mode 0600 and uses it afterwards', async () => {
    const configDir = join(await tempDir(), 'config');
    fake.on('POST', '/login', (req) => {
      const body = req.json<{ user: string; password: string }>();
      if (body.user !== 'alice' || body.password !== 'pa ss') {
        return apiError(401, 'UNAUTHORIZED', 'wrong user name or password');
      }
      const view: LoginView = {
        token: 'tok-alice',
        expiresAt: '2030-01-01T00:00:00.000Z',
        user: { name: 'alice', role: 'admin' },
      };
      return { json: view };
    });
    fake.on('GET', '/agents', (req) =>
      req.headers.authorization === 'Bearer tok-alice'
        ? { json: [agent] }
        : apiError(401, 'UNAUTHORIZED', 'no valid token'),
    );

    const login = await runCli(['login', `${fake.url}/`, '--user', 'alice', '--password-stdin'], {
      env: { MUSTER_CONFIG_DIR: configDir },
      input: 'pa ss\n',
    });
    assert.equal(login.code, 0, login.stderr);
    assert.equal(login.stdout, `Logged in to ${fake.url} as alice\n`);
    const path = join(configDir, 'credentials.json');
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const saved = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    assert.equal(saved.url, fake.url);
    assert.equal(saved.token, 'tok-alice');
    assert.equal(saved.user, 'alice');

    const list = await runCli(['agents', 'list', '--json'], {
      env: { MUSTER_CONFIG_DIR: configDir },
    });
    assert.equal(list.code, 0, list.stderr);
    assert.equal(fake.calls('GET', '/agents')[0]?.headers.authorization, 'Bearer tok-alice');
  });

  it('refuses a wrong password with exit 2 and the code, saving nothing', async () => {
    const configDir = join(await tempDir(), 'config');
    const result = await runCli(['login', fake.url, '--password-stdin'], {
      env: { MUSTER_CONFIG_DIR: configDir },
      input: 'wrong',
    });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^muster: wrong user name or password \[UNAUTHORIZED\]$/m);
    await assert.rejects(stat(join(configDir, 'credentials.json')), { code: 'ENOENT' });
  });

  it('says when it cannot reach the coordinator: exit 3', async () => {
    const port = await closedPort();
    const result = await runCli(['login', `http://127.0.0.1:${port}`, '--password-stdin'], {
      env: { MUSTER_CONFIG_DIR: join(await tempDir(), 'config') },
      input: 'x',
    });
    assert.equal(result.code, 3, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(
        `cannot reach the coordinator at http://127.0.0.1:${port}: connection refused.*\\[UNREACHABLE\\]`,
      ),
    );
  });

  it('refuses a URL that is not http(s) with exit 2', async () => {
    const result = await runCli(['login', 'ftp://example.com', '--password-stdin'], {
      env: { MUSTER_CONFIG_DIR: join(await tempDir(), 'config') },
      input: 'x',
    });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /\[INVALID_CONFIG\]/);
  });
});

describe('credentials', () => {
  it('without any, says how to log in: exit 2', async () => {
    const result = await runCli(['agents', 'list'], {
      env: { MUSTER_CONFIG_DIR: join(await tempDir(), 'none') },
    });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /not logged in: run muster login URL.*\[UNAUTHORIZED\]/);
  });

  it('a broken credentials file is a clear INVALID_CONFIG', async () => {
    const configDir = await tempDir();
    await writeFile(join(configDir, 'credentials.json'), '{"url": 3}');
    const result = await runCli(['status'], { env: { MUSTER_CONFIG_DIR: configDir } });
    assert.equal(result.code, 2);
    assert.match(
      result.stderr,
      /credentials\.json is not a Muster credentials file.*\[INVALID_CONFIG\]/,
    );
  });

  it('MUSTER_URL with MUSTER_TOKEN win over the file; an unreachable one exits 3', async () => {
    const port = await closedPort();
    const result = await runCli(['agents', 'list'], { env: envFor(`http://127.0.0.1:${port}`) });
    assert.equal(result.code, 3);
    assert.match(result.stderr, /\[UNREACHABLE\]/);
  });
});

describe('muster agents', () => {
  it('list --json prints name, address, status, slots and labels', async () => {
    fake.on('GET', '/agents', () => ({ json: [agent] }));
    const result = await runCli(['agents', 'list', '--json'], { env: envFor(fake.url) });
    assert.equal(result.code, 0, result.stderr);
    const list = JSON.parse(result.stdout) as Record<string, unknown>[];
    assert.equal(list.length, 1);
    const [first] = list;
    assert.deepEqual(
      {
        name: first?.name,
        address: first?.address,
        status: first?.status,
        slots: first?.slots,
        labels: first?.labels,
      },
      {
        name: 'build-1',
        address: '10.0.0.5:7420',
        status: 'connected',
        slots: 8,
        labels: ['linux', 'x64'],
      },
    );
    assert.equal(fake.calls('GET', '/agents')[0]?.headers.authorization, 'Bearer test-token');
  });

  it('list prints a table, or what to do when there are none', async () => {
    fake.on('GET', '/agents', () => ({ json: [agent] }));
    const table = await runCli(['agents', 'list'], { env: envFor(fake.url) });
    assert.match(table.stdout, /^NAME +ADDRESS +STATUS +SLOTS +LABELS/m);
    assert.match(table.stdout, /^build-1 +10\.0\.0\.5:7420 +connected +2\/8 +linux,x64/m);

    fake.on('GET', '/agents', () => ({ json: [] }));
    const empty = await runCli(['agents', 'list'], { env: envFor(fake.url) });
    assert.equal(
      empty.stdout,
      'No agents yet: muster agents add NAME HOST:PORT --access-key KEY, or start agents with muster agent --connect (muster agents tokens create)\n',
    );
  });

  it('add sends the agent; remove deletes it; a server refusal exits 2', async () => {
    fake.on('POST', '/agents', (req) => ({
      status: 201,
      json: { ...agent, ...req.json<Partial<AgentView>>(), status: 'connecting' },
    }));
    fake.on('DELETE', '/agents/:name', (req) =>
      req.params.name === 'build-1' ? { status: 204 } : apiError(404, 'NOT_FOUND', 'no agent nope'),
    );
    const add = await runCli(
      [
        'agents',
        'add',
        'build-1',
        '10.0.0.5:7420',
        '--access-key',
        'k'.repeat(20),
        '--labels',
        'linux, x64',
        '--slots',
        '4',
        '--no-tls',
      ],
      { env: envFor(fake.url) },
    );
    assert.equal(add.code, 0, add.stderr);
    assert.match(add.stdout, /Added agent build-1 \(10\.0\.0\.5:7420\)/);
    assert.deepEqual(fake.calls('POST', '/agents')[0]?.json(), {
      name: 'build-1',
      address: '10.0.0.5:7420',
      accessKey: 'k'.repeat(20),
      tls: false,
      labels: ['linux', 'x64'],
      slots: 4,
    });

    const remove = await runCli(['agents', 'remove', 'build-1'], { env: envFor(fake.url) });
    assert.equal(remove.code, 0, remove.stderr);
    assert.equal(remove.stdout, 'Removed agent build-1\n');

    const missing = await runCli(['agents', 'remove', 'nope'], { env: envFor(fake.url) });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /no agent nope \[NOT_FOUND\]/);
  });

  it('bad flags exit 2 before anything is sent', async () => {
    const result = await runCli(
      ['agents', 'add', 'a', 'h:1', '--access-key', 'k'.repeat(20), '--slots', 'many'],
      { env: envFor(fake.url) },
    );
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--slots "many" is not a positive whole number \[INVALID_CONFIG\]/);
    const usage = await runCli(['agents', 'add', 'a'], { env: envFor(fake.url) });
    assert.equal(usage.code, 2);
    assert.equal(fake.requests.length, 0);
  });
});

describe('muster extensions', () => {
  it('add uploads only the missing files, then registers the extension', async () => {
    const dir = await tempDir();
    await writeFile(
      join(dir, 'muster-extension.json'),
      JSON.stringify({ name: 'hello', version: '1.2.0', main: 'index.js' }),
    );
    await writeFile(join(dir, 'index.js'), 'export const operations = {};\n');
    await mkdir(join(dir, 'lib'));
    await writeFile(join(dir, 'lib', 'util.js'), 'export const x = 1;\n');
    const sha = (text: string): string => createHash('sha256').update(text).digest('hex');
    const known = sha('export const x = 1;\n');
    fake.on('POST', '/blobs/missing', (req) => ({
      json: { missing: req.json<{ hashes: string[] }>().hashes.filter((h) => h !== known) },
    }));
    fake.on('PUT', '/blobs/:sha', () => ({ status: 204 }));
    fake.on('POST', '/extensions', (req) => {
      const body = req.json<{ name: string; version: string; files: unknown[] }>();
      return {
        status: 201,
        json: {
          name: body.name,
          version: body.version,
          files: body.files.length,
          bytes: 100,
          addedAt: '2024-01-01T00:00:00.000Z',
          builtIn: false,
        },
      };
    });
    const result = await runCli(['extensions', 'add', dir], { env: envFor(fake.url) });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /Added extension hello 1\.2\.0 \(3 files/);
    const puts = fake.requests.filter((r) => r.method === 'PUT');
    assert.equal(puts.length, 2, 'the coordinator had lib/util.js');
    for (const put of puts) {
      assert.equal(put.headers['content-type'], 'application/octet-stream');
      assert.equal(
        put.path,
        `/api/v1/blobs/${createHash('sha256').update(put.body).digest('hex')}`,
      );
    }
    const body = fake.calls('POST', '/extensions')[0]?.json<{ files: { path: string }[] }>();
    assert.deepEqual(
      body?.files.map((f) => f.path),
      ['index.js', 'lib/util.js', 'muster-extension.json'],
    );
  });

  it('add refuses a folder without a manifest: exit 2', async () => {
    const result = await runCli(['extensions', 'add', await tempDir()], { env: envFor(fake.url) });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /has no muster-extension\.json.*\[INVALID_CONFIG\]/);
  });
});

describe('muster toolchains', () => {
  const id = 'ab'.repeat(32);
  const toolchain: ToolchainView = {
    id,
    info: { driver: 'bin/gcc', triple: 'x86_64-linux-gnu', version: '12.2.0', glibc: '2.36' },
    createdAt: '2026-12-01T10:00:00.000Z',
    agents: ['build-1'],
    createdBy: 'ada',
    lastUsedAt: '2026-12-06T09:00:00.000Z',
    files: 40,
    bytes: 83_886_080,
    shipped: true,
  };

  it('list prints the toolchains (most recently used first) as a table, or JSON', async () => {
    fake.on('GET', '/toolchains', () => ({ json: [toolchain] }));
    const table = await runCli(['toolchains', 'list'], { env: envFor(fake.url) });
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^ID +COMPILER +SIZE +BY +LAST USED +SHIPPED$/m);
    assert.match(
      table.stdout,
      new RegExp(`^${id} +bin/gcc 12\\.2\\.0 +80(\\.0)? MiB +ada +.+ +yes$`, 'm'),
    );
    const json = await runCli(['toolchains', 'list', '--json'], { env: envFor(fake.url) });
    assert.deepEqual(JSON.parse(json.stdout), [toolchain]);
  });

  it('remove deletes one by id; a bad id exits 2 before anything is sent', async () => {
    fake.on('DELETE', '/toolchains/:id', (req) =>
      req.params.id === id
        ? { status: 204 }
        : apiError(404, 'NOT_FOUND', `no toolchain ${req.params.id}`),
    );
    const removed = await runCli(['toolchains', 'remove', id], { env: envFor(fake.url) });
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(removed.stdout, `Removed toolchain ${id}\n`);
    const bad = await runCli(['toolchains', 'remove', 'gcc'], { env: envFor(fake.url) });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /"gcc" is not a toolchain id \(64 hex digits\) \[INVALID_CONFIG\]/);
    assert.equal(fake.calls('DELETE', `/toolchains/${id}`).length, 1);
    assert.equal(fake.calls('DELETE', '/toolchains/gcc').length, 0);
  });
});

describe('muster builds', () => {
  it("logs prints every task's text by whole lines, prefixed; one task's as it is", async () => {
    const chunks: LogsView['chunks'] = [
      { id: 1, task: 'compile', attempt: 1, stream: 'stdout', text: 'hello\nwor', at: '' },
      { id: 2, task: 'link', attempt: 1, stream: 'stdout', text: 'linking\n', at: '' },
      { id: 3, task: 'compile', attempt: 1, stream: 'stdout', text: 'ld\n', at: '' },
    ];
    fake.on('GET', '/builds/:id/logs', (req) => {
      const after = Number(req.query.get('after') ?? 0);
      const task = req.query.get('task');
      // Two pages, to check that the CLI continues with `next`.
      const rest = chunks
        .filter((c) => c.id > after && (task === null || c.task === task))
        .slice(0, 2);
      const view: LogsView = { chunks: rest, next: rest.at(-1)?.id ?? after };
      return { json: view };
    });
    const all = await runCli(['builds', 'logs', '7'], { env: envFor(fake.url) });
    assert.equal(all.code, 0, all.stderr);
    assert.equal(all.stdout, 'compile | hello\nlink | linking\ncompile | world\n');

    const one = await runCli(['builds', 'logs', '7', 'compile'], { env: envFor(fake.url) });
    assert.equal(one.stdout, 'hello\nworld\n');
    assert.equal(fake.calls('GET', '/builds/7/logs').at(-1)?.query.get('task'), 'compile');
  });

  it('show --json prints the build; show prints a table; a bad id exits 2', async () => {
    fake.on('GET', '/builds/:id', (req) =>
      req.params.id === '7'
        ? { json: build }
        : apiError(404, 'NOT_FOUND', `no build ${req.params.id}`),
    );
    const json = await runCli(['builds', 'show', '7', '--json'], { env: envFor(fake.url) });
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), build);

    const human = await runCli(['builds', 'show', '#7'], { env: envFor(fake.url) });
    assert.match(human.stdout, /^Build 7 \(demo\): failed$/m);
    assert.match(human.stdout, /^link +failed +2 +build-1 +1 +3\.0 s/m);

    const missing = await runCli(['builds', 'show', '99'], { env: envFor(fake.url) });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /no build 99 \[NOT_FOUND\]/);
    const bad = await runCli(['builds', 'show', 'seven'], { env: envFor(fake.url) });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /build id "seven" is not a positive whole number/);
  });

  it("show lists a compile session's jobs: where each ran, its cache result, its command", async () => {
    const job = build.tasks[0]!;
    const session: BuildView = {
      ...build,
      id: 8,
      kind: 'compile',
      name: 'make -j4',
      status: 'succeeded',
      error: null,
      summary: { jobs: 2, remote: 0, local: 1, cacheHits: 1, fallbacks: 1 },
      tasks: [
        {
          ...job,
          name: 'job-1',
          agent: 'local',
          attempts: 0,
          durationMs: 1500,
          label: 'gcc -c lapi.c',
          placement: 'local',
          cache: 'miss',
          fallback: 'agent-lost',
        },
        {
          ...job,
          name: 'job-2',
          agent: 'cache',
          attempts: 0,
          durationMs: 4,
          label: 'gcc -c lua.c',
          placement: 'cache',
          cache: 'hit',
        },
      ],
    };
    fake.on('GET', '/builds/:id', () => ({ json: session }));
    const json = await runCli(['builds', 'show', '8', '--json'], { env: envFor(fake.url) });
    assert.deepEqual(JSON.parse(json.stdout), session);
    const human = await runCli(['builds', 'show', '8'], { env: envFor(fake.url) });
    assert.equal(human.code, 0, human.stderr);
    assert.match(
      human.stdout,
      /^ {2}jobs {6}2: 0 on agents, 1 local, 1 from the cache, 1 fallbacks$/m,
    );
    assert.match(human.stdout, /^JOB +STATUS +EXIT +RAN +CACHE +TIME +COMMAND$/m);
    assert.match(
      human.stdout,
      /^job-1 +succeeded +0 +local +miss +1\.5 s +gcc -c lapi\.c \(fallback: agent-lost\)$/m,
    );
    assert.match(human.stdout, /^job-2 +succeeded +0 +cache +hit +[\d.]+ s +gcc -c lua\.c$/m);
  });

  it('list passes the filters and says when there is nothing', async () => {
    fake.on('GET', '/builds', () => ({ json: [] }));
    const result = await runCli(['builds', 'list', '--status', 'failed', '--limit', '5'], {
      env: envFor(fake.url),
    });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'No failed builds\n');
    const query = fake.calls('GET', '/builds')[0]?.query;
    assert.equal(query?.get('status'), 'failed');
    assert.equal(query?.get('limit'), '5');
    const bad = await runCli(['builds', 'list', '--status', 'broken'], { env: envFor(fake.url) });
    assert.equal(bad.code, 2);
  });

  it('cancel posts and prints the state', async () => {
    fake.on('POST', '/builds/:id/cancel', () => ({ json: { ...build, status: 'cancelled' } }));
    const result = await runCli(['builds', 'cancel', '7', '--json'], { env: envFor(fake.url) });
    assert.equal(result.code, 0, result.stderr);
    assert.equal((JSON.parse(result.stdout) as BuildView).status, 'cancelled');
  });

  it('delete sends DELETE and says so; a running build is refused with the code', async () => {
    fake.on('DELETE', '/builds/:id', (req) =>
      req.params.id === '7'
        ? { status: 204 }
        : {
            status: 409,
            json: {
              error: {
                code: 'BUILD_NOT_ENDED',
                message: `Build ${req.params.id} is running: cancel it first (muster builds cancel ${req.params.id}).`,
              },
            },
          },
    );
    const result = await runCli(['builds', 'delete', '7'], { env: envFor(fake.url) });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'Build 7 deleted\n');
    const running = await runCli(['builds', 'delete', '8'], { env: envFor(fake.url) });
    assert.notEqual(running.code, 0);
    assert.match(running.stderr, /cancel it first .*\[BUILD_NOT_ENDED\]/);
    assert.deepEqual(
      fake.requests.filter((r) => r.method === 'DELETE').map((r) => r.path),
      ['/api/v1/builds/7', '/api/v1/builds/8'],
    );
  });
});

describe('muster settings and status', () => {
  it('set reads VALUE as JSON when it parses, else as text; get prints one or all', async () => {
    fake.on('PUT', '/settings/:key', (req) => ({
      json: { key: req.params.key, value: req.json<{ value: unknown }>().value },
    }));
    fake.on('GET', '/settings', () => ({
      json: { 'Agent.InstanceId': 'abc', 'Backup.Timeout': 30 },
    }));
    fake.on('GET', '/settings/:key', (req) => ({ json: { key: req.params.key, value: 'abc' } }));

    const text = await runCli(['settings', 'set', 'Agent.InstanceId', 'team-a'], {
      env: envFor(fake.url),
    });
    assert.equal(text.code, 0, text.stderr);
    assert.equal(text.stdout, 'Agent.InstanceId = team-a\n');
    await runCli(['settings', 'set', 'Backup.Timeout', '30'], { env: envFor(fake.url) });
    const bodies = fake.requests.filter((r) => r.method === 'PUT').map((r) => r.json());
    assert.deepEqual(bodies, [{ value: 'team-a' }, { value: 30 }]);

    const one = await runCli(['settings', 'get', 'Agent.InstanceId'], { env: envFor(fake.url) });
    assert.equal(one.stdout, 'abc\n');
    const all = await runCli(['settings', 'get'], { env: envFor(fake.url) });
    assert.match(all.stdout, /^Agent\.InstanceId +abc$/m);
    assert.match(all.stdout, /^Backup\.Timeout +30$/m);
  });

  it('status --json prints the role and term', async () => {
    const status: StatusView = {
      role: 'backup-active',
      version: '0.1.0',
      instanceId: 'i-1',
      term: 4,
      agents: { total: 2, connected: 1 },
      builds: { queued: 0, running: 1 },
    };
    fake.on('GET', '/status', () => ({ json: status }));
    const json = await runCli(['status', '--json'], { env: envFor(fake.url) });
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), status);
    const human = await runCli(['status'], { env: envFor(fake.url) });
    assert.match(human.stdout, /^Role +backup, active/m);
    assert.match(human.stdout, /^Term +4$/m);
  });

  it('a server error with problems prints every one', async () => {
    fake.on('GET', '/status', () =>
      apiError(400, 'VALIDATION_FAILED', 'the request is not valid', {
        problems: ['a is bad', 'b is bad'],
      }),
    );
    const result = await runCli(['status'], { env: envFor(fake.url) });
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      'muster: the request is not valid [VALIDATION_FAILED]\n  - a is bad\n  - b is bad\n',
    );
  });
});
