/** The CLI's pieces without a subprocess: credentials, the API client, exit codes, formatting. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApiClient, type ApiEvent } from '../../src/cli/api-client.js';
import { describeTransition, progressLine } from '../../src/cli/build-display.js';
import { configDir, loadCredentials, normaliseUrl, saveCredentials } from '../../src/cli/config.js';
import { exitCodeFor, formatError } from '../../src/cli/exit-codes.js';
import { formatTable } from '../../src/api/format.js';
import type { TaskView } from '../../src/api/views/builds.js';
import { MusterError } from '../../src/protocol/errors.js';
import { FakeCoordinator, apiError } from '../helpers/cli-fake-coordinator.js';

let fake: FakeCoordinator;
const dirs: string[] = [];

before(async () => {
  fake = await FakeCoordinator.start();
});
after(async () => {
  await fake.close();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('credentials', () => {
  it('normalises URLs and refuses what is not http(s)', () => {
    assert.equal(normaliseUrl('http://h:8000/'), 'http://h:8000');
    assert.equal(normaliseUrl('https://h/muster/api/v1/'), 'https://h/muster');
    assert.throws(() => normaliseUrl('h:8000'), { code: 'INVALID_CONFIG' });
    assert.throws(() => normaliseUrl('not a url'), { code: 'INVALID_CONFIG' });
  });

  it('finds the config dir: MUSTER_CONFIG_DIR, then XDG_CONFIG_HOME, then ~/.config', () => {
    assert.equal(configDir({ MUSTER_CONFIG_DIR: '/x', XDG_CONFIG_HOME: '/y' }), '/x');
    assert.equal(configDir({ XDG_CONFIG_HOME: '/y' }), '/y/muster');
    assert.match(configDir({}), /\.config\/muster$/);
  });

  it('saves 0600 and loads back; the environment wins; half an environment is an error', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'muster-config-'));
    dirs.push(dir);
    const env = { XDG_CONFIG_HOME: dir };
    const path = await saveCredentials({ url: 'http://a:1', token: 't', user: 'u' }, env);
    assert.equal(path, join(dir, 'muster', 'credentials.json'));
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, 'muster'))).mode & 0o777, 0o700);
    assert.deepEqual(await loadCredentials(env), {
      url: 'http://a:1',
      token: 't',
      user: 'u',
      source: path,
    });
    const fromEnv = await loadCredentials({ ...env, MUSTER_URL: 'http://b:2/', MUSTER_TOKEN: 'e' });
    assert.equal(fromEnv.url, 'http://b:2');
    assert.equal(fromEnv.token, 'e');
    await assert.rejects(loadCredentials({ ...env, MUSTER_TOKEN: 'e' }), {
      code: 'INVALID_CONFIG',
      message: /MUSTER_TOKEN is set but MUSTER_URL is not/,
    });
    await writeFile(path, 'not json');
    await assert.rejects(loadCredentials(env), {
      code: 'INVALID_CONFIG',
      message: /not valid JSON/,
    });
  });
});

describe('ApiClient', () => {
  it('sends the token and returns typed JSON; 204 is fine', async () => {
    fake.on('GET', '/status', (req) => ({
      json: { role: 'primary', auth: req.headers.authorization },
    }));
    fake.on('DELETE', '/agents/:name', () => ({ status: 204 }));
    const client = new ApiClient({ url: `${fake.url}/`, token: 'abc' });
    const status = (await client.status()) as unknown as { role: string; auth: string };
    assert.deepEqual(status, { role: 'primary', auth: 'Bearer abc' });
    await client.removeAgent('a b');
    assert.equal(fake.requests.at(-1)?.path, '/api/v1/agents/a%20b');
  });

  it('maps error bodies to MusterError with code, message and details', async () => {
    fake.on('POST', '/builds', () =>
      apiError(400, 'PLAN_INVALID', 'The plan has 1 problem', { problems: ['x'] }),
    );
    const client = new ApiClient({ url: fake.url, token: 't' });
    await assert.rejects(client.createBuild({ plan: 'x', files: [] }), (err: MusterError) => {
      assert.equal(err.code, 'PLAN_INVALID');
      assert.equal(err.message, 'The plan has 1 problem');
      assert.deepEqual(err.details?.problems, ['x']);
      return true;
    });
  });

  it('maps unknown codes and bodies by HTTP status; 401 says how to log in again', async () => {
    fake.on('GET', '/extensions', () => apiError(409, 'SOMETHING_NEW', 'newer server'));
    fake.on('GET', '/agents', () => ({ status: 401, raw: Buffer.from('<html>') }));
    const client = new ApiClient({ url: fake.url, token: 't' });
    await assert.rejects(client.listExtensions(), (err: MusterError) => {
      assert.equal(err.code, 'CONFLICT');
      assert.equal(err.details?.serverCode, 'SOMETHING_NEW');
      return true;
    });
    await assert.rejects(client.listAgents(), (err: MusterError) => {
      assert.equal(err.code, 'UNAUTHORIZED');
      assert.match(err.message, /HTTP 401.*log in again with muster login/);
      return true;
    });
  });

  it('times out as UNREACHABLE', async () => {
    fake.on('GET', '/settings', () => new Promise(() => undefined));
    const client = new ApiClient({ url: fake.url, token: 't', timeoutMs: 200 });
    await assert.rejects(client.listSettings(), {
      code: 'UNREACHABLE',
      message: /cannot reach the coordinator at .*: no answer in 0\.2 s/,
    });
  });

  it('streams typed events, skipping unknown types and bad JSON, until closed', async () => {
    fake.on('GET', '/events', (_req, res) => {
      const sse = fake.sse(res);
      sse.send('build', { id: 3, status: 'running' });
      sse.write('event: unknown\ndata: {}\n\n');
      sse.write('event: task\ndata: {not json\n\n');
      sse.write('event: log\nid: 9\ndata: {"buildId":3,\ndata: "id":1}\n\n');
      return undefined;
    });
    const client = new ApiClient({ url: fake.url, token: 't' });
    const stream = await client.openEvents(3);
    assert.equal(fake.requests.at(-1)?.query.get('build'), '3');
    assert.equal(fake.requests.at(-1)?.headers.accept, 'text/event-stream');
    const seen: ApiEvent[] = [];
    for await (const event of stream) {
      seen.push(event);
      if (seen.length === 2) stream.close();
    }
    assert.deepEqual(seen, [
      { event: 'build', data: { id: 3, status: 'running' }, id: undefined },
      { event: 'log', data: { buildId: 3, id: 1 }, id: '9' },
    ]);
  });
});

describe('exit codes and errors', () => {
  it('maps codes to exit codes', () => {
    assert.equal(exitCodeFor(new MusterError('UNREACHABLE')), 3);
    for (const code of [
      'PLAN_INVALID',
      'UNAUTHORIZED',
      'NOT_FOUND',
      'INVALID_PATH',
      'READ_ONLY',
      'STANDBY',
    ] as const) {
      assert.equal(exitCodeFor(new MusterError(code)), 2, code);
    }
    assert.equal(exitCodeFor(new MusterError('INTERNAL')), 1);
    assert.equal(exitCodeFor(new Error('boom')), 1);
  });

  it('prints the code on the first line and problems not already in the message', () => {
    const err = new MusterError('PLAN_INVALID', 'Plan p has 2 problems:\n  - a\n  - b', {
      problems: ['a', 'b', 'c'],
    });
    assert.equal(
      formatError(err),
      'muster: Plan p has 2 problems: [PLAN_INVALID]\n  - a\n  - b\n  - c\n',
    );
  });
});

describe('formatting', () => {
  it('aligns tables', () => {
    assert.equal(
      formatTable(
        ['A', 'LONG'],
        [
          ['xyz', '1'],
          ['p', ''],
        ],
      ),
      'A    LONG\nxyz  1\np\n',
    );
  });

  it('describes task changes and progress', () => {
    const task: TaskView = {
      name: 'compile',
      status: 'succeeded',
      exitCode: 0,
      agent: 'agent-1',
      attempts: 1,
      needs: [],
      startedAt: null,
      finishedAt: null,
      durationMs: 400,
      outputs: [],
      error: null,
      label: null,
      cache: null,
      placement: null,
      fallback: null,
    };
    assert.equal(
      describeTransition({ ...task, status: 'running' }, task, false),
      'task compile succeeded on agent-1 (0.4 s)',
    );
    assert.equal(describeTransition(task, task, false), undefined);
    assert.equal(describeTransition(undefined, { ...task, status: 'running' }, true), undefined);
    assert.equal(
      describeTransition(
        { ...task, status: 'running' },
        { ...task, status: 'queued', error: 'agent lost' },
        true,
      ),
      'task compile will be retried: agent lost',
    );
    assert.equal(
      progressLine(
        [
          task,
          { ...task, status: 'running' },
          { ...task, status: 'failed' },
          { ...task, status: 'pending' },
        ],
        1500,
      ),
      '[##########----------] 1/4 done, 1 running, 1 failed  1.5 s',
    );
  });
});
