/**
 * The coordinator's lifecycle states (coordinator.ts, STATE_MOVES): created -> starting ->
 * running -> stopping -> stopped, an idempotent stop, a stop before any start, and no second
 * start. A real primary on a loopback port over a temp data dir (no agents, no backup).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import { compileCoordinatorOptions } from '../../src/coordinator/options.js';
import { MusterError } from '../../src/protocol/errors.js';

describe('coordinator lifecycle', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });
  const coordinator = async (): Promise<Coordinator> => {
    const dir = await mkdtemp(join(tmpdir(), 'muster-lifecycle-'));
    dirs.push(dir);
    return new Coordinator(
      compileCoordinatorOptions({ listen: '127.0.0.1:0', data: dir, passwordCost: 14 }),
      pino({ level: 'silent' }),
    );
  };

  it('runs once started and stops once, however often stop() is called', async () => {
    const c = await coordinator();
    assert.equal(c.state, 'created');
    const starting = c.start();
    assert.equal(c.state, 'starting');
    const info = await starting;
    assert.equal(c.state, 'running');
    assert.match(info.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    // Generated (and returned to be printed once) unless MUSTER_ADMIN_PASSWORD chose it.
    assert.equal(
      typeof info.generatedAdminPassword,
      process.env.MUSTER_ADMIN_PASSWORD ? 'undefined' : 'string',
    );
    assert.equal(info.fingerprint, null);
    const ready = await fetch(`${info.url}/readyz`);
    assert.deepEqual(await ready.json(), { ready: true, role: 'primary' });
    const first = c.stop();
    assert.equal(c.state, 'stopping');
    assert.equal(c.stop(), first);
    await first;
    assert.equal(c.state, 'stopped');
    await assert.rejects(fetch(`${info.url}/healthz`));
    await assert.rejects(c.start(), (err: unknown) => err instanceof MusterError);
  });

  it('goes straight to stopped when stopped before it started, and then cannot start', async () => {
    const c = await coordinator();
    await c.stop();
    assert.equal(c.state, 'stopped');
    await assert.rejects(
      c.start(),
      (err: unknown) => err instanceof MusterError && err.code === 'INTERNAL',
    );
  });
});
