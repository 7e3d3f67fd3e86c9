/**
 * Adoption at a takeover (ha/adopt.ts): attempts on the agents that the store never recorded are
 * recorded as running when their id names a known build (by id and tag) and an unfinished task
 * with no attempt running; ids of other builds, finished tasks or foreign software are left.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { adoptOrphans } from '../../src/coordinator/ha/adopt.js';
import { parsePlan } from '../../src/api/plan/parse.js';
import { newAgentTaskId } from '../../src/coordinator/scheduler/agent-task-id.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';
import type { TaskInfo } from '../../src/protocol/messages.js';

function info(taskId: string): TaskInfo {
  return {
    taskId,
    extension: 'core',
    operation: 'run',
    state: 'running',
    nextSeq: 0,
    startedAt: new Date().toISOString(),
    attached: false,
  };
}

describe('adoption of orphans at a takeover', () => {
  it('adopts by build id and tag, old ids by build id, and nothing else', async () => {
    const store = openSqliteStore(':memory:');
    const plan = parsePlan('tasks:\n  a:\n    run: x\n  b:\n    run: y\n  c:\n    run: z\n');
    const build = store.createBuild(plan, [], 'test');
    store.updateTask(build.id, 'c', { status: 'succeeded' });
    const a = newAgentTaskId(build, 'a', 1);
    const ids = [
      a,
      'b' + String(build.id) + ':b:1', // an id of an earlier version
      newAgentTaskId({ id: build.id, uid: 'c'.repeat(32) }, 'a', 2), // another build, same id
      newAgentTaskId(build, 'c', 1), // a finished task
      newAgentTaskId({ id: 1001, uid: 'd'.repeat(32) }, 'a', 1), // an unknown build
      'not-ours',
    ];
    const adopted = await adoptOrphans(
      store,
      [{ name: 'agent', listTasks: async () => ids.map(info) }],
      pino({ level: 'silent' }),
    );
    assert.equal(adopted, 2);
    assert.deepEqual(
      store.listAttempts(build.id).map((x) => [x.taskName, x.number, x.agentTaskId, x.status]),
      [
        ['a', 1, a, 'running'],
        ['b', 1, `b${build.id}:b:1`, 'running'],
      ],
    );
    assert.deepEqual(
      store.listTasks(build.id).map((t) => [t.name, t.status]),
      [
        ['a', 'running'],
        ['b', 'running'],
        ['c', 'succeeded'],
      ],
    );
    store.close();
  });
});
