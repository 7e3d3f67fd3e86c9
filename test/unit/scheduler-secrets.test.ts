/**
 * A task's secrets in the scheduler, against a fake agent and a real store: the values reach the
 * start request of the task that names them (and no other), never a row; its output is masked
 * before it is stored or evented, also across chunks; an error text is masked; a secret deleted
 * before the dispatch fails the attempt naming it.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { parsePlan } from '../../src/api/plan/parse.js';
import { BlobStore } from '../../src/common/blob-store.js';
import { EventBus } from '../../src/coordinator/events.js';
import { Scheduler } from '../../src/coordinator/scheduler/scheduler.js';
import { SecretKey } from '../../src/coordinator/secrets/secret-key.js';
import { Secrets } from '../../src/coordinator/secrets/secrets.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';
import type { Store } from '../../src/coordinator/store/store.js';
import { FakeSchedulerAgent } from '../helpers/fake-scheduler-agent.js';

const VALUE = 'pa55-w0rd-value';
const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

let store: Store;
let blobs: BlobStore;
let secrets: Secrets;
let events: EventBus;
let evented: string[];

beforeEach(async () => {
  store = openSqliteStore(':memory:');
  const dir = await mkdtemp(join(tmpdir(), 'scheduler-secrets-'));
  dirs.push(dir);
  blobs = new BlobStore(join(dir, 'blobs'));
  await blobs.init();
  secrets = new Secrets(store, await SecretKey.open(dir, true));
  secrets.set('API_TOKEN', VALUE, 'ada');
  events = new EventBus();
  evented = [];
  events.subscribe((_event, data) => evented.push(JSON.stringify(data)));
});

function scheduler(agent: FakeSchedulerAgent): Scheduler {
  return new Scheduler({
    store,
    pool: { ready: () => [agent] },
    blobs,
    events,
    log: pino({ level: 'silent' }),
    agentLossGraceMs: 50,
    secrets,
  });
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(check(), `timed out waiting for ${what}`);
}

function agent(): FakeSchedulerAgent {
  const a = new FakeSchedulerAgent('a', 2, []);
  a.taskKind = { extension: 'core', operation: 'run' };
  return a;
}

/** Everything the store keeps of a build, as text. */
function storedText(buildId: number): string {
  const logs = store.readLogs(buildId, { limit: 1000 });
  return JSON.stringify([
    store.getBuild(buildId),
    store.listTasks(buildId),
    store.listAttempts(buildId),
    logs.map((c) => ({ ...c, data: c.data.toString() })),
  ]);
}

describe('scheduler: secrets', () => {
  it('gives the values to the task that names them only, and masks its output and error', async () => {
    const a = agent();
    const s = scheduler(a);
    s.start();
    const build = store.createBuild(
      parsePlan(
        'tasks:\n  use:\n    run: x\n    env: {PLAIN: p}\n    secrets: [API_TOKEN]\n  other:\n    run: y\n',
      ),
      [],
      'ada',
    );
    s.submit(build);
    await until(() => a.started.length === 2, 'both tasks');
    const use = a.started.find((t) => t.spec.taskId.includes(':use:'))!;
    const other = a.started.find((t) => t.spec.taskId.includes(':other:'))!;
    assert.deepEqual(use.spec.env, { PLAIN: 'p', API_TOKEN: VALUE });
    assert.deepEqual(other.spec.env, {});
    let seq = 0;
    const out = (data: string) =>
      use.output({ seq: seq++, stream: 'stdout', data: Buffer.from(data) });
    out(`token ${VALUE.slice(0, 4)}`);
    out(`${VALUE.slice(4)} end\nprefix pa55`);
    use.finish({ status: 'failed', error: { code: 'OPERATION_FAILED', message: `bad ${VALUE}` } });
    other.finish({});
    await until(() => store.getBuild(build.id)?.status === 'failed', 'the build to end');
    const text = storedText(build.id);
    assert.equal(text.includes(VALUE), false, text);
    assert.equal(evented.join('\n').includes(VALUE), false);
    const log = store
      .readLogs(build.id, { taskName: 'use', limit: 100 })
      .map((c) => c.data.toString())
      .join('');
    // What began the value but did not end it is given back at the task's end.
    assert.equal(log, 'token *** end\nprefix pa55');
    const task = store.listTasks(build.id).find((t) => t.name === 'use');
    assert.match(task?.error ?? '', /bad \*\*\*/);
    s.stop();
  });

  it('fails the attempt naming a secret deleted before the dispatch', async () => {
    const a = agent();
    const s = scheduler(a);
    const build = store.createBuild(
      parsePlan('tasks:\n  use:\n    run: x\n    secrets: [API_TOKEN]\n'),
      [],
      'ada',
    );
    secrets.delete('API_TOKEN');
    s.start();
    s.submit(build);
    await until(() => store.getBuild(build.id)?.status === 'failed', 'the build to fail');
    assert.equal(a.started.length, 0);
    const task = store.listTasks(build.id)[0];
    assert.match(task?.error ?? '', /no secret named API_TOKEN/);
    s.stop();
  });
});
