/**
 * Compile sessions on a real primary (loopback, temp data dir, no agents): the wiring of
 * coordinator.ts (routes, session service, scheduler, idle check). A session opened before a
 * restart is still open after it, takes records there, and is closed by the idle check once its
 * client stays silent for --compile-idle-timeout (a third start with a short one, so nothing
 * races the requests before it).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import type { BuildView } from '../../src/api/views/builds.js';
import type { CompileSessionView } from '../../src/api/views/compile.js';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import { compileCoordinatorOptions } from '../../src/coordinator/options.js';

describe('compile sessions on a real coordinator', () => {
  const dirs: string[] = [];
  const running: Coordinator[] = [];
  after(async () => {
    for (const c of running) await c.stop();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  const start = async (dir: string, idle: string) => {
    const c = new Coordinator(
      compileCoordinatorOptions({
        listen: '127.0.0.1:0',
        data: dir,
        passwordCost: 14,
        compileIdleTimeout: idle,
      }),
      pino({ level: 'silent' }),
    );
    running.push(c);
    return { c, info: await c.start() };
  };

  it('keeps a session open across a restart, then closes it when its client stays silent', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'muster-compile-'));
    dirs.push(dir);
    const first = await start(dir, '10m');
    const password = first.info.generatedAdminPassword ?? process.env.MUSTER_ADMIN_PASSWORD;
    assert.ok(password, 'an admin password');
    const login = await fetch(`${first.info.url}/api/v1/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: 'admin', password }),
    });
    const { token } = (await login.json()) as { token: string };
    const call = async (url: string, path: string, body?: unknown) => {
      const response = await fetch(`${url}/api/v1${path}`, {
        method: body === undefined ? 'GET' : 'POST',
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
    };
    const record = {
      label: 'gcc -c a.c',
      placement: 'local',
      cache: 'miss',
      exitCode: 0,
      startedAt: Date.now(),
      durationMs: 1,
    };

    const opened = await call(first.info.url, '/compile-sessions', {
      command: 'make',
      cwd: '/src',
      host: 'laptop',
    });
    assert.equal(opened.status, 201, JSON.stringify(opened.body));
    const { buildId } = opened.body as CompileSessionView;
    assert.equal(
      (await call(first.info.url, `/compile-sessions/${buildId}/records`, { records: [record] }))
        .status,
      204,
    );
    await first.c.stop();

    const second = await start(dir, '10m');
    const after = (await call(second.info.url, `/builds/${buildId}`)).body as BuildView;
    assert.deepEqual([after.kind, after.status, after.tasks.length], ['compile', 'running', 1]);
    // The client goes on reporting to the restarted coordinator…
    assert.equal(
      (
        await call(second.info.url, `/compile-sessions/${buildId}/records`, {
          records: [record],
        })
      ).status,
      204,
    );
    await second.c.stop();

    // …then stops (here with a short idle timeout, so the test need not wait two minutes).
    const third = await start(dir, '300ms');
    const url = third.info.url;
    let view = after;
    for (let i = 0; i < 500 && view.status === 'running'; i++) {
      await new Promise((r) => setTimeout(r, 20));
      view = (await call(url, `/builds/${buildId}`)).body as BuildView;
    }
    assert.deepEqual([view.status, view.error], ['failed', 'the client went away']);
    assert.deepEqual(
      view.tasks.map((t) => t.name),
      ['job-1', 'job-2'],
    );
    const late = await call(url, `/compile-sessions/${buildId}/records`, { records: [] });
    assert.equal(late.status, 409);
  });
});
