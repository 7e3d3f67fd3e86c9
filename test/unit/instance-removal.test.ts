/**
 * Which instances idle removal picks (instance-removal.ts): only those with no connection and no
 * task, idle longer than the TTL by their own last activity; another instance bound to the same
 * key being in use does not keep one.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { idleInstances, inUse } from '../../src/agent/instance-removal.js';
import { Instance, type InstanceRecord } from '../../src/agent/instances.js';
import type { TaskRecord } from '../../src/agent/task-record.js';

const DAY = 86_400_000;
const NOW = Date.parse('2030-02-01T00:00:00.000Z');

function instance(key: string, lastSeen: string, publicKey: string | null = 'KEY'): Instance {
  const record: InstanceRecord = {
    product: 'muster',
    key,
    instanceId: null,
    sourceIp: null,
    dirName: key,
    createdAt: lastSeen,
    lastSeen,
    current: null,
    publicKey,
    lastAddress: null,
    lastConnected: null,
    taskUser: null,
    versions: [],
  };
  return new Instance(record, `/nonexistent/${key}`, `/nonexistent/${key}.json`);
}

describe('idle instance removal', () => {
  it('picks instances idle longer than the TTL, and no other', () => {
    const old = instance('muster@ip:10.0.0.3', '2030-01-01T00:00:00.000Z');
    const recent = instance('muster@ip:10.0.0.4', '2030-01-31T00:00:00.000Z');
    // The same key as `old`, in use (a primary whose backup's instance sits idle).
    const busy = instance('muster@ip:10.0.0.2', '2030-01-01T00:00:00.000Z');
    busy.connections = 1;
    assert.deepEqual(
      idleInstances([old, recent, busy], 30 * DAY, NOW).map((i) => i.key),
      ['muster@ip:10.0.0.3'],
    );
    assert.match(inUse(busy) ?? '', /a live connection/);
    assert.equal(inUse(old), undefined);
  });

  it('keeps one with a task, running or waiting to be collected, or active in this run', () => {
    const withTask = instance('muster@id:a', '2029-01-01T00:00:00.000Z');
    withTask.tasks.set('t', { state: 'done' } as TaskRecord);
    assert.match(inUse(withTask) ?? '', /1 ended task still waits/);
    withTask.tasks.set('u', { state: 'running' } as TaskRecord);
    assert.match(inUse(withTask) ?? '', /1 of its tasks is running/);
    const justActive = instance('muster@id:b', '2029-01-01T00:00:00.000Z');
    justActive.lastActive = NOW - DAY;
    assert.deepEqual(idleInstances([withTask, justActive], 30 * DAY, NOW), []);
  });
});
