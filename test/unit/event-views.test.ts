/**
 * The coordinator's events as the API's event stream shows them: each maps to the view the
 * scheduler used to emit itself, once per event however many streams are open.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PlanTask } from '../../src/api/plan/types.js';
import type { AgentView } from '../../src/api/views/agents.js';
import { eventView } from '../../src/coordinator/api/event-views.js';
import type { CoordinatorEventMap } from '../../src/coordinator/events.js';
import type { AgentSnapshot } from '../../src/coordinator/pool/agent-snapshot.js';
import type { BuildRow, TaskRow } from '../../src/coordinator/store/types.js';

const plan = (name: string, needs: string[]): PlanTask => ({
  name,
  extension: 'core',
  operation: 'run',
  input: { command: 'true' },
  inputs: [],
  outputs: [],
  needs,
  env: {},
  timeoutMs: undefined,
  retries: 0,
  requires: [],
});

const row = (name: string, status: TaskRow['status']): TaskRow => ({
  buildId: 7,
  name,
  status,
  attempts: status === 'pending' ? 0 : 1,
  exitCode: status === 'succeeded' ? 0 : null,
  agent: status === 'pending' ? null : 'a1',
  startedAt: status === 'pending' ? null : '2026-01-01T00:00:00.000Z',
  finishedAt: status === 'succeeded' ? '2026-01-01T00:00:02.500Z' : null,
  outputs: [],
  error: null,
  label: null,
  cache: null,
  placement: null,
  fallback: null,
});

const build: BuildRow = {
  id: 7,
  uid: 'u7',
  status: 'running',
  plan: { name: 'demo', tasks: [plan('compile', []), plan('link', ['compile'])] },
  files: [],
  createdBy: 'admin',
  createdAt: '2026-01-01T00:00:00.000Z',
  startedAt: '2026-01-01T00:00:00.000Z',
  finishedAt: null,
  error: null,
  kind: 'plan',
  open: false,
  summary: null,
};

describe('event views', () => {
  it('maps a build event to the build summary', () => {
    const data: CoordinatorEventMap['build'] = {
      build,
      tasks: [row('compile', 'succeeded'), row('link', 'pending')],
    };
    assert.deepEqual(eventView('build', data), {
      id: 7,
      kind: 'plan',
      name: 'demo',
      status: 'running',
      createdBy: 'admin',
      createdAt: '2026-01-01T00:00:00.000Z',
      startedAt: '2026-01-01T00:00:00.000Z',
      finishedAt: null,
      counts: { total: 2, succeeded: 1, failed: 0, running: 0, pending: 1 },
    });
  });

  it('maps a task event to the build id and the task view', () => {
    const data: CoordinatorEventMap['task'] = {
      buildId: 7,
      row: row('compile', 'succeeded'),
      plan: plan('compile', []),
    };
    assert.equal(
      JSON.stringify(eventView('task', data)),
      JSON.stringify({
        buildId: 7,
        task: {
          name: 'compile',
          status: 'succeeded',
          exitCode: 0,
          agent: 'a1',
          attempts: 1,
          needs: [],
          startedAt: '2026-01-01T00:00:00.000Z',
          finishedAt: '2026-01-01T00:00:02.500Z',
          durationMs: 2500,
          outputs: [],
          error: null,
          label: null,
          cache: null,
          placement: null,
          fallback: null,
        },
      }),
    );
  });

  it('maps a log event to the chunk as text, fields in the order they always had', () => {
    const data: CoordinatorEventMap['log'] = {
      buildId: 7,
      id: 3,
      task: 'compile',
      attempt: 1,
      stream: 'stdout',
      data: Buffer.from('h\u00e9llo \xff\n', 'latin1'),
      at: '2026-01-01T00:00:01.000Z',
    };
    assert.equal(
      JSON.stringify(eventView('log', data)),
      JSON.stringify({
        buildId: 7,
        id: 3,
        task: 'compile',
        attempt: 1,
        stream: 'stdout',
        text: Buffer.from('h\u00e9llo \xff\n', 'latin1').toString('utf8'),
        at: '2026-01-01T00:00:01.000Z',
      }),
    );
  });

  it('shows an agent as the agent list does (address with IPv6 brackets), and maps each event once', () => {
    const agent: AgentSnapshot = {
      name: 'a1',
      host: '::1',
      port: 7420,
      status: 'connected',
      slots: 4,
      slotsFrom: 'agent',
      busySlots: 1,
      labels: ['linux'],
      tls: true,
      fingerprint: 'ab:cd',
      lastError: null,
      agentVersion: '1.0.0',
      instanceKey: 'key',
      lastConnectedAt: '2026-01-01T00:00:00.000Z',
      dialsOut: false,
      approved: true,
      facts: null,
      bootId: 'b'.repeat(64),
      toolchains: [],
    };
    const view: AgentView = {
      name: 'a1',
      address: '[::1]:7420',
      status: 'connected',
      slots: 4,
      slotsFrom: 'agent',
      busySlots: 1,
      labels: ['linux'],
      tls: true,
      fingerprint: 'ab:cd',
      lastError: null,
      agentVersion: '1.0.0',
      instanceKey: 'key',
      lastConnectedAt: '2026-01-01T00:00:00.000Z',
      dialsOut: false,
      approved: true,
      facts: null,
    };
    assert.deepEqual(eventView('agent', agent), view);
    assert.equal(JSON.stringify(eventView('agent', agent)), JSON.stringify(view));
    assert.equal(eventView('agent', { ...agent, host: 'build-1' }).address, 'build-1:7420');
    assert.equal(eventView('agent', agent), eventView('agent', agent));
    const data: CoordinatorEventMap['task'] = {
      buildId: 7,
      row: row('link', 'pending'),
      plan: plan('link', ['compile']),
    };
    assert.equal(eventView('task', data), eventView('task', data));
  });
});
