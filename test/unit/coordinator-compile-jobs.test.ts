/**
 * One remote compile job end to end, in this process: a real coordinator (loopback, temp data
 * dir) with a real agent (plain TCP) and the host it forks. The client's steps over HTTP: this
 * machine's gcc registered as a toolchain (its files uploaded as blobs), which reaches the agent
 * with the next bundle (GET /toolchains/{id} names the agent once it can run it); a session; the
 * directives-only text uploaded; POST …/jobs. The answer's object is the local compile's, byte
 * for byte, and the coordinator keeps it in the shared cache under the job's key.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { Agent } from '../../src/agent/agent.js';
import { compileAgentOptions } from '../../src/agent/options.js';
import type {
  CacheLookupView,
  CompileJobView,
  CompileSessionView,
  ToolchainView,
} from '../../src/api/views/compile.js';
import { stripPrelude } from '../../src/cli/cc/directives.js';
import { discoverToolchain } from '../../src/cli/cc/toolchain.js';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import { compileCoordinatorOptions } from '../../src/coordinator/options.js';
import { runGcc } from '../helpers/gcc.js';

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('a remote compile job through a real coordinator and agent', () => {
  let dir: string;
  let client: string;
  let agent: Agent;
  let coordinator: Coordinator;
  let url: string;
  let token: string;
  const accessKey = 'compile-jobs-test-access-key';

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'muster-compile-jobs-'));
    client = join(dir, 'client');
    await mkdir(join(client, 'obj'), { recursive: true });
    await writeFile(join(client, 'lib.h'), '#define SCALE 7\n');
    await writeFile(
      join(client, 'scale.c'),
      '#include <string.h>\n#include "lib.h"\nint scale(const char *s) { return (int)strlen(s) * SCALE; }\n',
    );
    agent = new Agent(
      compileAgentOptions({
        listen: '127.0.0.1:0',
        data: join(dir, 'agent'),
        accessKey,
        tls: false,
        taskUsers: 'off',
      }),
      pino({ level: 'silent' }),
    );
    await agent.start();
    coordinator = new Coordinator(
      compileCoordinatorOptions({
        listen: '127.0.0.1:0',
        data: join(dir, 'coordinator'),
        passwordCost: 14,
      }),
      pino({ level: 'silent' }),
    );
    const info = await coordinator.start();
    url = info.url;
    const password = info.generatedAdminPassword ?? process.env.MUSTER_ADMIN_PASSWORD;
    assert.ok(password, 'an admin password');
    const login = await fetch(`${url}/api/v1/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: 'admin', password }),
    });
    token = ((await login.json()) as { token: string }).token;
  });
  after(async () => {
    await coordinator?.stop();
    await agent?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function call(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: unknown }> {
    const response = await fetch(`${url}/api/v1${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return {
      status: response.status,
      body: text === '' ? undefined : (JSON.parse(text) as unknown),
    };
  }

  async function upload(data: Buffer): Promise<string> {
    const hash = sha(data);
    const response = await fetch(`${url}/api/v1/blobs/${hash}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
      body: data,
    });
    assert.ok(response.status === 201 || response.status === 204, `blob upload ${response.status}`);
    return hash;
  }

  async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, what: string) {
    let value = await read();
    for (let i = 0; i < 1000 && !done(value); i++) {
      await new Promise((r) => setTimeout(r, 20));
      value = await read();
    }
    assert.ok(done(value), `timed out waiting for ${what}: ${JSON.stringify(value)}`);
    return value;
  }

  it('registers the toolchain, ships it, runs the job there, and caches its object', async () => {
    const added = await call('POST', '/agents', {
      name: 'a1',
      address: `127.0.0.1:${agent.address.port}`,
      accessKey,
      tls: false,
      slots: 1,
    });
    assert.equal(added.status, 201, JSON.stringify(added.body));

    const gcc = await discoverToolchain('gcc');
    for (const file of gcc.files) await upload(await readFile(file.source));
    const files = gcc.files.map(({ path, sha256, size, mode }) => ({ path, sha256, size, mode }));
    const registered = await call('PUT', `/toolchains/${gcc.id}`, {
      files,
      info: { driver: gcc.driver, triple: gcc.triple, version: gcc.version, glibc: gcc.glibc },
    });
    assert.equal(registered.status, 201, JSON.stringify(registered.body));
    await until(
      async () => (await call('GET', `/toolchains/${gcc.id}`)).body as ToolchainView,
      (view) => view.agents.includes('a1'),
      'the agent to have the toolchain',
    );

    const opened = await call('POST', '/compile-sessions', {
      command: 'make',
      cwd: client,
      host: 'laptop',
    });
    assert.equal(opened.status, 201, JSON.stringify(opened.body));
    const { buildId } = opened.body as CompileSessionView;

    const pass = join(dir, 'scale.i');
    runGcc(['-E', '-fdirectives-only', 'scale.c', '-o', pass], client);
    const stripped = stripPrelude(await readFile(pass));
    assert.ok(stripped !== null);
    const textHash = await upload(stripped.text);
    const job = await call('POST', `/compile-sessions/${buildId}/jobs`, {
      label: 'gcc -O2 -g -c scale.c -o obj/scale.o',
      input: {
        toolchain: gcc.id,
        driver: gcc.driver,
        args: ['-O2', '-g', '-c', 'scale.c', '-o', 'obj/scale.o'],
        cwd: '',
        debugPrefixMaps: [{ dir: '', to: client }],
        env: {},
        outputs: [{ name: 'object', path: 'obj/scale.o' }],
      },
      source: { path: 'scale.c', sha256: textHash, size: stripped.text.length },
      maxQueueMs: 10_000,
    });
    assert.equal(job.status, 200, JSON.stringify(job.body));
    const view = job.body as CompileJobView;
    assert.deepEqual(
      [view.task, view.status, view.agent, view.exitCode, view.stderr, view.reason],
      ['job-1', 'succeeded', 'a1', 0, '', null],
      JSON.stringify(view),
    );
    runGcc(['-O2', '-g', '-c', 'scale.c', '-o', 'obj/local.o'], client);
    const local = await readFile(join(client, 'obj', 'local.o'));
    assert.equal(view.object?.sha256, sha(local), 'the object of a local compile');

    const lookup = await call('POST', '/cache/lookup', { keys: [view.cacheKey] });
    const entries = (lookup.body as CacheLookupView).entries;
    assert.deepEqual(
      entries.map((e) => [e.source, e.toolchain, e.outputs.map((o) => [o.name, o.sha256])]),
      [['agent', gcc.id, [['object', sha(local)]]]],
    );
  });
});
