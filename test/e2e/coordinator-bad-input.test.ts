/**
 * The coordinator under bad input, with real processes on loopback: malformed plans, inputs that
 * were never uploaded or escape, unknown and misconfigured agents, wrong credentials (and the
 * login rate limit), expired tokens, a viewer trying admin calls, unknown routes and broken JSON,
 * oversize uploads, blobs whose hash does not match, a client that hangs up mid-upload, "agents"
 * that answer garbage, a real agent killed while a large input travels to it, and a full disk.
 *
 * Every refusal is checked for its HTTP status, its error code and the one error shape
 * `{ error: { code, message, details? } }`; where something could be half-written (build rows,
 * agent rows, blobs, `<data>/blobs/.incoming`) the test checks it was not; and after each case the
 * coordinator still answers. The main coordinator's last test runs a real build on it.
 *
 * The login rate limit, the token lifetime and the full disk each get a coordinator of their own
 * (a locked-out IP, a 3 s token lifetime and a 2 MiB tmpfs would get in the other cases' way).
 * The full disk needs `mount -t tmpfs` (root); the test says so if it is not permitted.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AgentView } from '../../src/api/views/agents.js';
import type { ApiErrorBody } from '../../src/api/error-body.js';
import type { AttemptView, BuildSummary, BuildView } from '../../src/api/views/builds.js';
import type { LoginView } from '../../src/api/views/users.js';
import type { StatusView } from '../../src/api/views/status.js';
import {
  cleanup,
  makeTempDir,
  startAgent,
  waitFor,
  type StartedAgent,
} from '../helpers/agent-process.js';
import {
  ADMIN_PASSWORD,
  killCoordinators,
  startCoordinator,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';
import {
  headOnly,
  rawRequest,
  startFakeAgent,
  startUpload,
  streamUntilAnswered,
  type FakeAgent,
  type FakeAgentBehaviour,
} from '../helpers/coord-bad-peers.js';
import { runCli } from '../helpers/cli.js';

/** Per-test bound; nothing comes near it unless something hangs. */
const T = { timeout: 60_000 };
const MiB = 1024 * 1024;

const dirs: string[] = [];
const mounts: string[] = [];
const fakes: FakeAgent[] = [];

after(async () => {
  await killCoordinators();
  await Promise.all(fakes.map((f) => f.close()));
  for (const dir of mounts) {
    const result = spawnSync('umount', [dir], { timeout: 10_000 });
    if (result.status !== 0) spawnSync('umount', ['-l', dir], { timeout: 10_000 });
  }
  await cleanup(dirs);
});

// ---- helpers ----------------------------------------------------------------------------------

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  body: unknown;
}

/** A request with exactly the credentials given (none unless `token`). */
async function call(
  base: string,
  method: string,
  path: string,
  options: { token?: string; json?: unknown; body?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.json !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${base}${path}`, {
    method,
    headers,
    ...(options.json !== undefined ? { body: JSON.stringify(options.json) } : {}),
    ...(options.body !== undefined ? { body: options.body } : {}),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  let body: unknown;
  try {
    body = text === '' ? null : JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: response.status, headers: response.headers, text, body };
}

/** Checks status, code and the error shape; returns the error. */
function assertError(
  answer: { status: number; text: string; body?: unknown },
  status: number,
  code: string,
  what = '',
): ApiErrorBody['error'] {
  const body = answer.body === undefined ? (JSON.parse(answer.text) as unknown) : answer.body;
  assert.equal(
    answer.status,
    status,
    `${what} expected HTTP ${status} ${code}, got: ${answer.text}`,
  );
  const error = (body as Partial<ApiErrorBody> | null)?.error;
  assert.ok(error, `no { error } in ${answer.text}`);
  assert.equal(error.code, code, `${what} ${answer.text}`);
  assert.equal(typeof error.message, 'string');
  assert.ok(error.message.length > 0, 'the message says what is wrong');
  return error;
}

async function assertServes(c: StartedCoordinator): Promise<void> {
  const status = await c.api<StatusView>('GET', '/status');
  assert.equal(status.status, 200, JSON.stringify(status.body));
  assert.equal(status.body.role, 'primary');
  assert.equal((await call(c.url, 'GET', '/healthz')).status, 200);
}

/** A temp dir removed in after(). */
async function tempDir(prefix: string): Promise<string> {
  const dir = await makeTempDir(prefix);
  dirs.push(dir);
  return dir;
}

const sha = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

async function missing(c: StartedCoordinator, hashes: string[]): Promise<string[]> {
  const answer = await c.api<{ missing: string[] }>('POST', '/blobs/missing', { hashes });
  assert.equal(answer.status, 200);
  return [...answer.body.missing].sort();
}

function incoming(c: StartedCoordinator): Promise<string[]> {
  return readdir(join(c.dataDir, 'blobs', '.incoming'));
}

async function buildIds(c: StartedCoordinator): Promise<number[]> {
  const answer = await c.api<BuildSummary[]>('GET', '/builds');
  assert.equal(answer.status, 200);
  return answer.body.map((b) => b.id).sort((a, b) => a - b);
}

async function agentNames(c: StartedCoordinator): Promise<string[]> {
  const answer = await c.api<AgentView[]>('GET', '/agents');
  assert.equal(answer.status, 200);
  return answer.body.map((a) => a.name).sort();
}

const blobHeaders = (token: string, length: number | undefined) => ({
  authorization: `Bearer ${token}`,
  'content-type': 'application/octet-stream',
  ...(length === undefined ? {} : { 'content-length': length }),
});

// ---- one coordinator, many bad requests ------------------------------------------------------

describe('one coordinator under bad input', () => {
  let c: StartedCoordinator;
  const agents: Record<'one' | 'two', StartedAgent> = {} as Record<'one' | 'two', StartedAgent>;
  /** Builds this coordinator has accepted (the refused ones must leave no row). */
  const accepted: number[] = [];

  before(async () => {
    const [one, two] = await Promise.all([
      startAgent({ dataDir: await tempDir('muster-agent-') }),
      startAgent({ dataDir: await tempDir('muster-agent-') }),
    ]);
    agents.one = one;
    agents.two = two;
    c = await startCoordinator({
      dataDir: await tempDir('muster-coord-'),
      args: ['--agent-loss-grace', '1s', '--heartbeat-interval', '500ms'],
    });
    await c.addAgent('one', one);
    await c.addAgent('two', two);
    await waitFor(
      async () => {
        const { body } = await c.api<AgentView[]>('GET', '/agents');
        return body.length === 2 && body.every((a) => a.status === 'connected');
      },
      20_000,
      'both agents to connect',
    );
  });

  it(
    'refuses malformed plans with PLAN_INVALID listing every problem, creating no build',
    T,
    async () => {
      const cases: { what: string; plan: string; problems: RegExp[] }[] = [
        { what: 'YAML syntax error', plan: 'tasks:\n  a: [unclosed\n', problems: [/YAML syntax/] },
        {
          what: 'a cycle',
          plan: 'tasks:\n  a:\n    run: "true"\n    needs: [b]\n  b:\n    run: "true"\n    needs: [a]\n',
          problems: [/dependency cycle a -> b -> a/],
        },
        {
          what: 'an unknown need',
          plan: 'tasks:\n  a:\n    run: "true"\n    needs: [ghost]\n',
          problems: [/unknown task "ghost"/],
        },
        {
          what: 'both run and uses',
          plan: 'tasks:\n  a:\n    run: "true"\n    uses: core/noop\n',
          problems: [/both run: and uses:/],
        },
        {
          what: 'outputs escaping the work directory',
          plan: 'tasks:\n  a:\n    run: "true"\n    outputs: ["../x", "/abs"]\n',
          problems: [/"\.\.\/x" escapes/, /"\/abs" is an absolute path/],
        },
        {
          what: 'three problems at once',
          plan: [
            'tasks:',
            '  a:',
            '    run: "true"',
            '    uses: core/noop',
            '    needs: [ghost]',
            '  b:',
            '    run: "true"',
            '    outputs: ["../x"]',
            '',
          ].join('\n'),
          problems: [
            /tasks\.a: has both run: and uses:/,
            /tasks\.a\.needs: unknown task "ghost"/,
            /tasks\.b\.outputs: "\.\.\/x" escapes/,
          ],
        },
        { what: 'not a mapping', plan: 'just some words', problems: [/must be a mapping/] },
      ];
      const before = await buildIds(c);
      for (const { what, plan, problems } of cases) {
        const answer = await call(c.url, 'POST', '/api/v1/builds', {
          token: c.token,
          json: { plan, files: [] },
        });
        const error = assertError(answer, 400, 'PLAN_INVALID', what);
        const listed = error.details?.problems;
        assert.ok(Array.isArray(listed), `${what}: details.problems is a list: ${answer.text}`);
        assert.equal(listed.length, problems.length, `${what}: ${answer.text}`);
        problems.forEach((re, i) => assert.match(String(listed[i]), re, what));
        assert.match(
          error.message,
          new RegExp(`${problems.length} problems?`),
          `${what}: the message counts them`,
        );
      }
      // Not a plan at all: the request body itself is invalid.
      for (const plan of ['', 42, null]) {
        const answer = await call(c.url, 'POST', '/api/v1/builds', {
          token: c.token,
          json: { plan },
        });
        assertError(answer, 400, 'VALIDATION_FAILED');
      }
      assert.deepEqual(await buildIds(c), before, 'no build row for a refused plan');
      await assertServes(c);
    },
  );

  it(
    'keeps answering /healthz while it checks a plan of 40,000 duplicate keys, then refuses it',
    T,
    async () => {
      const before = await buildIds(c);
      // 440 KB: checked in a worker thread, so the event loop stays free meanwhile.
      const plan = `tasks:\n  a:\n    run: x\n${'    run: x\n'.repeat(40_000)}`;
      let answered = false;
      const submitted = call(c.url, 'POST', '/api/v1/builds', {
        token: c.token,
        json: { plan, files: [] },
      }).finally(() => {
        answered = true;
      });
      let healthy = 0;
      while (!answered) {
        assert.equal((await call(c.url, 'GET', '/healthz')).status, 200);
        if (!answered) healthy++;
      }
      const error = assertError(await submitted, 400, 'PLAN_INVALID');
      const problems = error.details?.problems;
      assert.ok(Array.isArray(problems));
      assert.equal(problems.length, 40_000);
      assert.equal(problems[0], 'tasks.a: duplicate key "run" (first at line 3) (line 4)');
      // Checked inline, the plan would hold every request until it was done.
      assert.ok(healthy >= 3, `only ${healthy} /healthz answers came while the plan was checked`);
      assert.deepEqual(await buildIds(c), before, 'no build row for a refused plan');
    },
  );

  it(
    'refuses inputs that were not uploaded (BLOB_NOT_FOUND) or whose paths escape (INVALID_PATH)',
    T,
    async () => {
      const before = await buildIds(c);
      const present = Buffer.from('uploaded\n');
      const presentSha = await c.putBlob(present);
      const absentSha = sha(randomBytes(32));
      const plan = 'tasks:\n  t:\n    run: cat a.txt b.txt\n    inputs: [a.txt, b.txt]\n';
      const file = (path: string, sha256: string, size = 9) => ({
        path,
        sha256,
        size,
        mode: 0o644,
      });

      const notUploaded = await call(c.url, 'POST', '/api/v1/builds', {
        token: c.token,
        json: { plan, files: [file('a.txt', presentSha), file('b.txt', absentSha, 32)] },
      });
      const error = assertError(notUploaded, 400, 'BLOB_NOT_FOUND');
      assert.deepEqual(error.details?.missing, [absentSha], 'lists exactly the missing one');

      for (const path of ['../x', 'a/../../b', '/etc/passwd', 'a\\..\\b', 'a//b']) {
        const answer = await call(c.url, 'POST', '/api/v1/builds', {
          token: c.token,
          json: { plan, files: [file(path, presentSha)] },
        });
        const invalid = assertError(answer, 400, 'INVALID_PATH');
        assert.equal(invalid.details?.path, path);
      }
      const twice = await call(c.url, 'POST', '/api/v1/builds', {
        token: c.token,
        json: { plan, files: [file('a.txt', presentSha), file('a.txt', presentSha)] },
      });
      assertError(twice, 400, 'VALIDATION_FAILED');
      const badSha = await call(c.url, 'POST', '/api/v1/builds', {
        token: c.token,
        json: { plan, files: [file('a.txt', 'not-a-sha')] },
      });
      assertError(badSha, 400, 'VALIDATION_FAILED');
      assert.deepEqual(await buildIds(c), before, 'no build row for a refused submission');
      await assertServes(c);
    },
  );

  it(
    'answers unknown agents with 404, a second add with 409 and bad settings with 400, adding nothing',
    T,
    async () => {
      const names = await agentNames(c);
      for (const [method, body] of [
        ['GET', undefined],
        ['PATCH', { labels: ['x'] }],
        ['DELETE', undefined],
      ] as const) {
        const answer = await call(c.url, method, '/api/v1/agents/nope', {
          token: c.token,
          ...(body === undefined ? {} : { json: body }),
        });
        const error = assertError(answer, 404, 'NOT_FOUND');
        assert.match(error.message, /nope/, `${method}: names the agent`);
      }

      const two = agents.two;
      const again = await call(c.url, 'POST', '/api/v1/agents', {
        token: c.token,
        json: {
          name: 'one',
          address: `127.0.0.1:${two.port}`,
          accessKey: two.accessKey,
          fingerprint: two.fingerprint,
        },
      });
      assertError(again, 409, 'CONFLICT');
      const one = await c.api<AgentView>('GET', '/agents/one');
      assert.equal(
        one.body.address,
        `127.0.0.1:${agents.one.port}`,
        'the first "one" is untouched',
      );

      const good = {
        name: 'newcomer',
        address: `127.0.0.1:${two.port}`,
        accessKey: two.accessKey,
        fingerprint: two.fingerprint,
      };
      const bad: [string, Record<string, unknown>, RegExp][] = [
        ['an address without a port number', { address: 'agent.example:notaport' }, /HOST:PORT/],
        ['a port over 65535', { address: 'agent.example:70000' }, /HOST:PORT/],
        ['TLS without a fingerprint', { fingerprint: undefined }, /fingerprint/],
        ['a fingerprint that is not a SHA-256', { fingerprint: 'AB:CD' }, /fingerprint/],
        ['a short access key', { accessKey: 'short' }, /accessKey/],
        ['a name with spaces', { name: 'two words' }, /name/],
        ['an unknown field', { colour: 'red' }, /colour|unrecognized/i],
      ];
      for (const [what, change, message] of bad) {
        const answer = await call(c.url, 'POST', '/api/v1/agents', {
          token: c.token,
          json: { ...good, ...change },
        });
        const error = assertError(answer, 400, 'VALIDATION_FAILED');
        assert.match(`${error.message} ${JSON.stringify(error.details ?? {})}`, message, what);
      }
      assert.deepEqual(await agentNames(c), names, 'no agent row for a refused add');
      await assertServes(c);
    },
  );

  it(
    'refuses wrong passwords and missing, invalid or logged-out tokens with 401 on every API route',
    T,
    async () => {
      const wrong = await call(c.url, 'POST', '/api/v1/login', {
        json: { user: 'admin', password: 'not the password' },
      });
      const wrongError = assertError(wrong, 401, 'UNAUTHORIZED');
      const nobody = await call(c.url, 'POST', '/api/v1/login', {
        json: { user: 'nobody', password: ADMIN_PASSWORD },
      });
      const nobodyError = assertError(nobody, 401, 'UNAUTHORIZED');
      assert.equal(
        nobodyError.message,
        wrongError.message,
        'does not tell which of the two was wrong',
      );
      assertError(
        await call(c.url, 'POST', '/api/v1/login', { json: { user: 'admin' } }),
        400,
        'VALIDATION_FAILED',
      );

      // A token that was valid, then logged out.
      const login = await call(c.url, 'POST', '/api/v1/login', {
        json: { user: 'admin', password: ADMIN_PASSWORD },
      });
      assert.equal(login.status, 200);
      const loggedOut = (login.body as LoginView).token;
      assert.equal((await call(c.url, 'POST', '/api/v1/logout', { token: loggedOut })).status, 204);

      const credentials: [string, Record<string, string>][] = [
        ['no credentials', {}],
        ['an invalid token', { authorization: 'Bearer not-a-token' }],
        ['a token with a character changed', { authorization: `Bearer ${c.token.slice(0, -1)}x` }],
        ['a logged-out token', { authorization: `Bearer ${loggedOut}` }],
        [
          'basic auth',
          { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` },
        ],
      ];
      const routes: [string, string, unknown?][] = [
        ['GET', '/api/v1/builds'],
        ['GET', '/api/v1/builds/1'],
        ['POST', '/api/v1/builds', { plan: 'tasks:\n  t:\n    run: "true"\n' }],
        ['GET', '/api/v1/agents'],
        [
          'POST',
          '/api/v1/agents',
          { name: 'x', address: '127.0.0.1:1', accessKey: 'k'.repeat(32), tls: false },
        ],
        ['GET', '/api/v1/status'],
        ['GET', '/api/v1/whoami'],
        ['GET', '/api/v1/users'],
        ['POST', '/api/v1/blobs/missing', { hashes: [] }],
        ['GET', '/api/v1/settings'],
        ['GET', '/api/v1/events'],
      ];
      const before = await buildIds(c);
      for (const [what, headers] of credentials) {
        for (const [method, path, json] of routes) {
          const answer = await call(c.url, method, path, {
            headers,
            ...(json === undefined ? {} : { json }),
          });
          assertError(answer, 401, 'UNAUTHORIZED', `${method} ${path} with ${what}:`);
        }
      }
      assert.deepEqual(await buildIds(c), before);
      await assertServes(c);
    },
  );

  it('serves /healthz, /readyz, /metrics and the OpenAPI document without a token', T, async () => {
    const health = await call(c.url, 'GET', '/healthz');
    assert.equal(health.status, 200);
    assert.deepEqual(health.body, { ok: true });
    const ready = await call(c.url, 'GET', '/readyz');
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.body, { ready: true, role: 'primary' });
    const metrics = await call(c.url, 'GET', '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get('content-type') ?? '', /^text\/plain/);
    assert.match(metrics.text, /^# HELP muster_/m);
    assert.match(metrics.text, /^muster_login_failures_total [1-9]/m, 'counts the failed logins');
    const openapi = await call(c.url, 'GET', '/api/v1/openapi.json');
    assert.equal(openapi.status, 200);
    assert.match(String((openapi.body as { openapi?: unknown }).openapi), /^3\./);
  });

  it('lets a viewer read but not administer (403 FORBIDDEN)', T, async () => {
    const names = await agentNames(c);
    const created = await c.api('POST', '/users', {
      name: 'viewer1',
      password: 'viewer-password-1',
      role: 'viewer',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assertError(
      await call(c.url, 'POST', '/api/v1/users', {
        token: c.token,
        json: { name: 'viewer1', password: 'another-password', role: 'admin' },
      }),
      409,
      'CONFLICT',
    );
    assertError(
      await call(c.url, 'POST', '/api/v1/users', {
        token: c.token,
        json: { name: 'viewer2', password: 'short', role: 'viewer' },
      }),
      400,
      'VALIDATION_FAILED',
    );

    const login = await call(c.url, 'POST', '/api/v1/login', {
      json: { user: 'viewer1', password: 'viewer-password-1' },
    });
    assert.equal(login.status, 200, login.text);
    const viewer = login.body as LoginView;
    assert.equal(viewer.user.role, 'viewer');
    const token = viewer.token;

    const two = agents.two;
    const forbidden: [string, string, unknown?][] = [
      [
        'POST',
        '/api/v1/agents',
        {
          name: 'sneaky',
          address: `127.0.0.1:${two.port}`,
          accessKey: two.accessKey,
          fingerprint: two.fingerprint,
        },
      ],
      ['PATCH', '/api/v1/agents/one', { labels: ['mine'] }],
      ['DELETE', '/api/v1/agents/one'],
      ['POST', '/api/v1/users', { name: 'viewer3', password: 'viewer-password-3', role: 'admin' }],
      ['GET', '/api/v1/users'],
      ['POST', '/api/v1/builds', { plan: 'tasks:\n  a:\n    run: "true"\n', files: [] }],
      ['POST', '/api/v1/builds/1/cancel'],
    ];
    for (const [method, path, json] of forbidden) {
      const answer = await call(c.url, method, path, {
        token,
        ...(json === undefined ? {} : { json }),
      });
      assertError(answer, 403, 'FORBIDDEN');
    }
    assert.deepEqual(await agentNames(c), names, 'nothing added or removed');
    assert.deepEqual((await c.api<AgentView>('GET', '/agents/one')).body.labels, []);

    for (const path of [
      '/api/v1/builds',
      '/api/v1/agents',
      '/api/v1/status',
      '/api/v1/agents/one',
    ]) {
      const answer = await call(c.url, 'GET', path, { token });
      assert.equal(answer.status, 200, `${path}: ${answer.text}`);
    }
    const whoami = await call(c.url, 'GET', '/api/v1/whoami', { token });
    assert.deepEqual(whoami.body, { name: 'viewer1', role: 'viewer' });
    await assertServes(c);
  });

  it(
    'answers unknown routes with 404 and malformed requests with 400, in the error shape',
    T,
    async () => {
      const token = c.token;
      for (const [method, path] of [
        ['GET', '/api/v1/nope'],
        ['DELETE', '/api/v1/builds'],
        // A missing file; a path without a dot (/login, /builds/3) is the web UI's, see below.
        ['GET', '/nope.js'],
        ['GET', '/api/v1/builds/abc'],
        ['GET', '/api/v1/builds/999999'],
        ['GET', `/api/v1/blobs/${sha('never uploaded')}`],
      ]) {
        assertError(await call(c.url, method!, path!, { token }), 404, 'NOT_FOUND');
      }
      const page = await fetch(`${c.url}/builds/3`, { signal: AbortSignal.timeout(10_000) });
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<div id="app">/);
      const json = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      for (const body of ['{"plan": ', '{plan: "x"}', '', 'null', '[]', '"a string"']) {
        const answer = await rawRequest(c.url, 'POST', '/api/v1/builds', json, body);
        assertError(answer, 400, 'VALIDATION_FAILED');
      }
      const notJson = await rawRequest(
        c.url,
        'POST',
        '/api/v1/agents',
        { authorization: `Bearer ${token}`, 'content-type': 'text/plain' },
        'name=x',
      );
      assert.ok([400, 415].includes(notJson.status), notJson.text);
      assert.equal((JSON.parse(notJson.text) as ApiErrorBody).error.code, 'VALIDATION_FAILED');
      for (const query of ['limit=0', 'limit=many', 'status=exploded', 'colour=red']) {
        const answer = await call(c.url, 'GET', `/api/v1/builds?${query}`, { token });
        assertError(answer, 400, 'VALIDATION_FAILED');
      }
      assertError(
        await call(c.url, 'GET', '/api/v1/blobs/xyz', { token }),
        400,
        'VALIDATION_FAILED',
      );
      await assertServes(c);
    },
  );

  it('refuses oversize uploads with 413 PAYLOAD_TOO_LARGE before reading them', T, async () => {
    const target = sha('a blob that is far too large');
    // Only the head: a 1 GiB + 1 body is announced and never sent.
    const blob = await headOnly(
      c.url,
      'PUT',
      `/api/v1/blobs/${target}`,
      blobHeaders(c.token, 1024 * MiB + 1),
    );
    const error = assertError(blob, 413, 'PAYLOAD_TOO_LARGE');
    assert.match(error.message, /1073741824/, 'names the limit');

    const jsonHeaders = { authorization: `Bearer ${c.token}`, 'content-type': 'application/json' };
    const announced = await headOnly(c.url, 'POST', '/api/v1/builds', {
      ...jsonHeaders,
      'content-length': 17 * MiB,
    });
    assertError(announced, 413, 'PAYLOAD_TOO_LARGE');
    // A chunked JSON body (no length announced) that goes one byte past 16 MiB.
    const streamed = await streamUntilAnswered(
      c.url,
      'POST',
      '/api/v1/builds',
      jsonHeaders,
      16 * MiB + 1,
      Buffer.alloc(MiB, ' '),
    );
    assertError(streamed, 413, 'PAYLOAD_TOO_LARGE');
    // A blob sent without a Content-Length.
    const chunked = await rawRequest(
      c.url,
      'PUT',
      `/api/v1/blobs/${sha('chunked')}`,
      { ...blobHeaders(c.token, undefined), 'transfer-encoding': 'chunked' },
      'chunked',
    );
    assertError(chunked, 400, 'VALIDATION_FAILED');

    assert.deepEqual(await missing(c, [target, sha('chunked')]), [target, sha('chunked')].sort());
    assert.deepEqual(await incoming(c), []);
    await assertServes(c);
  });

  it('refuses a blob whose content does not match its hash, keeping nothing of it', T, async () => {
    const announced = Buffer.from('the content that was announced\n');
    const sent = Buffer.from('different content, sent instead\n');
    const answer = await rawRequest(
      c.url,
      'PUT',
      `/api/v1/blobs/${sha(announced)}`,
      blobHeaders(c.token, sent.length),
      sent,
    );
    const error = assertError(answer, 400, 'BLOB_HASH_MISMATCH');
    assert.equal(error.details?.sha256, sha(announced));
    assert.equal(error.details?.actual, sha(sent));
    assert.deepEqual(
      await missing(c, [sha(announced), sha(sent)]),
      [sha(announced), sha(sent)].sort(),
    );
    assert.deepEqual(await incoming(c), [], 'no temp file left in blobs/.incoming');
    assertError(
      await call(c.url, 'PUT', '/api/v1/blobs/not-a-sha', {
        token: c.token,
        headers: { 'content-type': 'application/octet-stream' },
        body: 'x',
      }),
      400,
      'VALIDATION_FAILED',
    );
    await assertServes(c);
  });

  it(
    'keeps nothing of an upload whose client hangs up mid-way, and accepts it again afterwards',
    T,
    async () => {
      const data = randomBytes(4 * MiB);
      const path = `/api/v1/blobs/${sha(data)}`;
      const upload1 = await startUpload(
        c.url,
        path,
        blobHeaders(c.token, data.length),
        data.subarray(0, MiB),
      );
      await waitFor(async () => (await incoming(c)).length > 0, 10_000, 'the upload to start');
      await upload1.abort();
      await waitFor(async () => (await incoming(c)).length === 0, 10_000, 'the temp file to go');
      assert.deepEqual(await missing(c, [sha(data)]), [sha(data)], 'no half blob in the store');
      await assertServes(c);
      // Had half of it been kept under its name, this upload would be skipped as already there.
      await c.putBlob(data);
      const back = await fetch(`${c.url}${path}`, {
        headers: { authorization: `Bearer ${c.token}` },
        signal: AbortSignal.timeout(30_000),
      });
      assert.equal(back.status, 200);
      assert.ok(Buffer.from(await back.arrayBuffer()).equals(data));
    },
  );

  it(
    'marks agents that answer garbage unreachable or refused, in words, and keeps serving',
    T,
    async () => {
      const expected: Record<FakeAgentBehaviour, { status: string; lastError: RegExp }> = {
        // The agent sent bytes that are not a frame: saying it "closed the connection" would be wrong.
        http: { status: 'unreachable', lastError: /frame/i },
        random: { status: 'unreachable', lastError: /frame/i },
        'bad-kind': { status: 'unreachable', lastError: /frame kind/i },
        'bad-json': { status: 'unreachable', lastError: /JSON/ },
        'wrong-message': { status: 'unreachable', lastError: /challenge/ },
        'bad-proof': { status: 'refused', lastError: /access key/ },
        close: { status: 'unreachable', lastError: /closed/ },
      };
      const behaviours = Object.keys(expected) as FakeAgentBehaviour[];
      const started = new Map<FakeAgentBehaviour, FakeAgent>();
      for (const behaviour of behaviours) {
        const fake = await startFakeAgent(behaviour);
        fakes.push(fake);
        started.set(behaviour, fake);
        const added = await c.api('POST', '/agents', {
          name: `fake-${behaviour}`,
          address: `127.0.0.1:${fake.port}`,
          accessKey: 'k'.repeat(32),
          tls: false,
        });
        assert.equal(added.status, 201, JSON.stringify(added.body));
      }
      const views = new Map<string, AgentView>();
      await waitFor(
        async () => {
          for (const view of (await c.api<AgentView[]>('GET', '/agents')).body)
            views.set(view.name, view);
          return behaviours.every((b) => {
            const view = views.get(`fake-${b}`);
            return (
              (view?.status === 'unreachable' || view?.status === 'refused') &&
              view.lastError !== null
            );
          });
        },
        20_000,
        'every fake agent to be unreachable or refused',
      );
      const problems: string[] = [];
      for (const behaviour of behaviours) {
        const view = views.get(`fake-${behaviour}`)!;
        const want = expected[behaviour];
        const hello = started.get(behaviour)!.hellos[0];
        assert.equal(hello?.t, 'hello', `${behaviour}: the coordinator opened with a hello`);
        assert.equal(hello?.product, 'muster');
        assert.equal(hello?.accessKey, undefined, 'the key never crosses the wire');
        if (view.status !== want.status || !want.lastError.test(view.lastError ?? ''))
          problems.push(
            `${behaviour}: ${view.status}, "${view.lastError}" (want ${want.status}, ${want.lastError})`,
          );
      }
      // The real agents are untouched, and the coordinator answers.
      for (const name of ['one', 'two']) {
        assert.equal((await c.api<AgentView>('GET', `/agents/${name}`)).body.status, 'connected');
      }
      await assertServes(c);
      // A misbehaving agent can be removed.
      assert.equal((await c.api('DELETE', '/agents/fake-close')).status, 204);
      assertError(
        await call(c.url, 'GET', '/api/v1/agents/fake-close', { token: c.token }),
        404,
        'NOT_FOUND',
      );
      assert.deepEqual(problems, [], 'each status and lastError says what went wrong');
    },
  );

  it(
    'finishes a build on the other agent when its agent is killed while a 50 MB input is sent to it',
    T,
    async (t) => {
      const big = randomBytes(50 * MiB);
      const bigSha = await c.putBlob(big);
      const answer = await c.api<BuildView>('POST', '/builds', {
        plan: [
          'name: big-input',
          'tasks:',
          '  digest:',
          '    run: sha256sum big.bin | cut -c1-64 > sum.txt && sleep 1',
          '    inputs: [big.bin]',
          '    outputs: [sum.txt]',
          '',
        ].join('\n'),
        files: [{ path: 'big.bin', sha256: bigSha, size: big.length, mode: 0o644 }],
      });
      assert.equal(answer.status, 201, JSON.stringify(answer.body));
      const id = answer.body.id;
      accepted.push(id);
      // The attempt is "running" from the moment it is dispatched, before its input has travelled.
      const running = await c.waitForTask(id, 'digest', 'running');
      const victimName = running.tasks[0]!.agent as 'one' | 'two';
      assert.ok(victimName === 'one' || victimName === 'two', JSON.stringify(running));
      // Kill it while the input travels (a partial file in its blob store's .incoming) if we
      // catch that moment, else as soon as it holds the whole input (the task is then running).
      const victim = agents[victimName];
      const blobs = join(victim.dataDir, 'temp', 'blobs');
      let phase = '';
      await waitFor(
        async () => {
          if ((await readdir(join(blobs, '.incoming')).catch((): string[] => [])).length > 0)
            phase = 'while the input was being transferred';
          else if (
            (await readdir(join(blobs, bigSha.slice(0, 2))).catch((): string[] => [])).includes(
              bigSha,
            )
          )
            phase = 'after the input had arrived';
          return phase !== '';
        },
        20_000,
        'the input to travel to the agent',
      );
      await victim.kill();
      t.diagnostic(`agent ${victimName} was killed ${phase}`);

      const done = await c.waitForBuild(id, 60_000);
      assert.equal(done.status, 'succeeded', JSON.stringify(done));
      const task = done.tasks[0]!;
      assert.equal(task.attempts, 2);
      assert.notEqual(task.agent, victimName);
      const history = (await c.api<AttemptView[]>('GET', `/builds/${id}/attempts`)).body;
      assert.deepEqual(
        history.map((a) => [a.agent, a.status]),
        [
          [victimName, 'lost'],
          [task.agent, 'succeeded'],
        ],
      );
      const sum = await fetch(`${c.url}/api/v1/blobs/${task.outputs[0]!.sha256}`, {
        headers: { authorization: `Bearer ${c.token}` },
        signal: AbortSignal.timeout(30_000),
      });
      assert.equal((await sum.text()).trim(), bigSha, 'the other agent got the whole input');
      await assertServes(c);
    },
  );

  it('after all that, still runs a real build on the same coordinator', T, async () => {
    const input = Buffer.from('alpha\n');
    const inputSha = await c.putBlob(input);
    const answer = await c.api<BuildView>('POST', '/builds', {
      plan: [
        'name: after-the-storm',
        'tasks:',
        '  upper:',
        '    run: tr a-z A-Z < a.txt > A.txt',
        '    inputs: [a.txt]',
        '    outputs: [A.txt]',
        '  count:',
        '    run: wc -c < A.txt',
        '    needs: [upper]',
        '',
      ].join('\n'),
      files: [{ path: 'a.txt', sha256: inputSha, size: input.length, mode: 0o644 }],
    });
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    accepted.push(answer.body.id);
    const done = await c.waitForBuild(answer.body.id, 60_000);
    assert.equal(done.status, 'succeeded', JSON.stringify(done));
    assert.deepEqual(
      done.tasks.map((t) => [t.name, t.status, t.exitCode]),
      [
        ['upper', 'succeeded', 0],
        ['count', 'succeeded', 0],
      ],
    );
    const out = await fetch(`${c.url}/api/v1/blobs/${done.tasks[0]!.outputs[0]!.sha256}`, {
      headers: { authorization: `Bearer ${c.token}` },
      signal: AbortSignal.timeout(30_000),
    });
    assert.equal(await out.text(), 'ALPHA\n');
    assert.deepEqual(await buildIds(c), accepted, 'exactly the accepted builds exist');
    const ready = await call(c.url, 'GET', '/readyz');
    assert.equal(ready.status, 200);
  });
});

// ---- login rate limit -------------------------------------------------------------------------

describe('failed logins', () => {
  it(
    'are rate-limited per user and address after 10, per address after 50 (429 RATE_LIMITED with Retry-After), and the coordinator keeps serving',
    T,
    async () => {
      const c = await startCoordinator({ dataDir: await tempDir('muster-coord-') });
      for (let i = 0; i < 10; i++) {
        const answer = await call(c.url, 'POST', '/api/v1/login', {
          json: { user: 'admin', password: `wrong-${i}` },
        });
        assertError(answer, 401, 'UNAUTHORIZED');
      }
      // Another user from the same address is not locked out by admin's failures...
      assertError(
        await call(c.url, 'POST', '/api/v1/login', {
          json: { user: 'someone-else', password: 'x' },
        }),
        401,
        'UNAUTHORIZED',
      );
      // ...until the address has failed 50 times in all.
      for (let i = 0; i < 39; i++) {
        const answer = await call(c.url, 'POST', '/api/v1/login', {
          json: { user: `guess-${i}`, password: 'x' },
        });
        assertError(answer, 401, 'UNAUTHORIZED');
      }
      for (const json of [
        { user: 'admin', password: 'wrong-again' },
        { user: 'admin', password: ADMIN_PASSWORD },
        { user: 'someone-new', password: 'whatever' },
      ]) {
        const answer = await call(c.url, 'POST', '/api/v1/login', { json });
        const error = assertError(answer, 429, 'RATE_LIMITED');
        const retryAfter = Number(answer.headers.get('retry-after'));
        assert.ok(
          Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60,
          `retry-after ${retryAfter}`,
        );
        assert.match(error.message, /try again/);
      }
      // A session from before keeps working, and so does everything public.
      await assertServes(c);
      assert.equal((await call(c.url, 'GET', '/readyz')).status, 200);
    },
  );
});

// ---- token lifetime ---------------------------------------------------------------------------

describe('expired tokens', () => {
  it(
    'are refused with 401 UNAUTHORIZED once their lifetime (--token-ttl) is over, also by the CLI',
    T,
    async () => {
      const home = await tempDir('muster-home-');
      const c = await startCoordinator({
        dataDir: await tempDir('muster-coord-'),
        args: ['--token-ttl', '3s'],
      });
      const sentAt = Date.now();
      const login = await call(c.url, 'POST', '/api/v1/login', {
        json: { user: 'admin', password: ADMIN_PASSWORD },
      });
      const receivedAt = Date.now();
      assert.equal(login.status, 200, login.text);
      const { token, expiresAt } = login.body as LoginView;
      const expires = Date.parse(expiresAt);
      assert.ok(
        expires >= sentAt + 3000 - 5 && expires <= receivedAt + 3000 + 5,
        `expiresAt ${expiresAt} is 3 s after the login`,
      );
      assert.equal((await call(c.url, 'GET', '/api/v1/whoami', { token })).status, 200);

      await new Promise((r) =>
        setTimeout(r, Math.min(5_000, Math.max(0, expires - Date.now()) + 250)),
      );
      for (const [method, path] of [
        ['GET', '/api/v1/whoami'],
        ['GET', '/api/v1/builds'],
        ['GET', '/api/v1/status'],
      ]) {
        const error = assertError(
          await call(c.url, method!, path!, { token }),
          401,
          'UNAUTHORIZED',
        );
        assert.match(error.message, /expired/);
      }
      const cli = await runCli(['builds', 'list'], {
        env: { MUSTER_URL: c.url, MUSTER_TOKEN: token, HOME: home, XDG_CONFIG_HOME: home },
      });
      assert.equal(cli.code, 2, `exit code for UNAUTHORIZED; stderr: ${cli.stderr}`);
      assert.match(cli.stderr, /\[UNAUTHORIZED\]/);
      assert.match(cli.stderr, /log in/);

      // Logging in again works: the coordinator keeps serving.
      const again = await call(c.url, 'POST', '/api/v1/login', {
        json: { user: 'admin', password: ADMIN_PASSWORD },
      });
      assert.equal(again.status, 200);
      const fresh = (again.body as LoginView).token;
      assert.equal((await call(c.url, 'GET', '/api/v1/status', { token: fresh })).status, 200);
    },
  );

  it('refuses an invalid --token-ttl at start with INVALID_CONFIG and exit code 2', T, async () => {
    const data = await tempDir('muster-coord-');
    const result = await runCli(
      ['coordinator', '--listen', '127.0.0.1:0', '--data', data, '--token-ttl', 'soon'],
      { env: { MUSTER_ADMIN_PASSWORD: ADMIN_PASSWORD } },
    );
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /--token-ttl/);
    assert.match(result.stderr, /\[INVALID_CONFIG\]/);
  });
});

// ---- full disk --------------------------------------------------------------------------------

describe('a full disk', () => {
  let c: StartedCoordinator;

  before(async () => {
    const dataDir = await tempDir('muster-coord-');
    const blobs = join(dataDir, 'blobs');
    await mkdir(blobs, { recursive: true });
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', blobs], {
      timeout: 10_000,
      encoding: 'utf8',
    });
    if (mounted.status !== 0) {
      throw new Error(
        `this test needs "mount -t tmpfs" (root) to fill a disk: ${mounted.stderr || String(mounted.error)}`,
      );
    }
    mounts.push(blobs);
    c = await startCoordinator({ dataDir });
  });

  it(
    'answers an upload that does not fit with 507 STORAGE_ERROR, keeps nothing of it, and keeps serving',
    T,
    async () => {
      const big = randomBytes(3 * MiB);
      const answer = await rawRequest(
        c.url,
        'PUT',
        `/api/v1/blobs/${sha(big)}`,
        blobHeaders(c.token, big.length),
        big,
      );
      const error = assertError(answer, 507, 'STORAGE_ERROR');
      assert.equal(error.details?.errno, 'ENOSPC', answer.text);
      assert.deepEqual(await incoming(c), [], 'no temp file left in blobs/.incoming');
      assert.deepEqual(await missing(c, [sha(big)]), [sha(big)]);
      await assertServes(c);
      // The space of the failed upload was given back: a blob that fits is stored.
      const small = randomBytes(256 * 1024);
      await c.putBlob(small);
      const back = await fetch(`${c.url}/api/v1/blobs/${sha(small)}`, {
        headers: { authorization: `Bearer ${c.token}` },
        signal: AbortSignal.timeout(30_000),
      });
      assert.ok(Buffer.from(await back.arrayBuffer()).equals(small));
      // The error is the coordinator's own disk: naming the agent's would send people to the
      // wrong machine.
      assert.match(error.message, /no space left/);
      assert.doesNotMatch(error.message, /agent/, 'the message blames the agent');
    },
  );
});
