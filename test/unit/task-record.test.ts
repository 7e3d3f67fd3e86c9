import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { OutputEntry } from '../../src/agent/task-record.js';
import { TaskRecord } from '../../src/agent/task-record.js';
import type { TaskResult } from '../../src/protocol/task-types.js';

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

async function record(limits = { memoryBytes: 10, maxBytes: 1000 }): Promise<TaskRecord> {
  const dir = await mkdtemp(join(tmpdir(), 'task-record-'));
  dirs.push(dir);
  return new TaskRecord(
    { taskId: 't', extension: 'core', operation: 'run' },
    dir,
    join(dir, 'spill'),
    limits,
  );
}

function collector(): {
  entries: OutputEntry[];
  results: TaskResult[];
  follower: { output(e: OutputEntry): void; done(r: TaskResult): void };
} {
  const entries: OutputEntry[] = [];
  const results: TaskResult[] = [];
  return {
    entries,
    results,
    follower: { output: (e) => entries.push(e), done: (r) => results.push(r) },
  };
}

describe('task records', () => {
  it('replays output kept in memory and spilled to disk, in order, from any seq', async () => {
    const task = await record();
    for (let i = 0; i < 20; i++)
      task.append(i % 2 ? 'stderr' : 'stdout', Buffer.from(`line ${i}\n`));
    const all = collector();
    await task.follow(all.follower, 0);
    assert.deepEqual(
      all.entries.map((e) => e.seq),
      Array.from({ length: 20 }, (_, i) => i),
    );
    assert.equal(all.entries[3]!.stream, 'stderr');
    assert.equal(all.entries[19]!.data.toString(), 'line 19\n');

    const tail = collector();
    await task.follow(tail.follower, 15);
    assert.deepEqual(
      tail.entries.map((e) => e.seq),
      [15, 16, 17, 18, 19],
    );
    // Only the latest follower gets live output and the result.
    task.append('stdout', Buffer.from('live\n'));
    task.finish({ status: 'succeeded', durationMs: 1 });
    assert.equal(all.entries.length, 20);
    assert.equal(tail.entries.at(-1)!.data.toString(), 'live\n');
    assert.equal(tail.results.length, 1);
  });

  it('bounds the output and says where it was cut', async () => {
    const task = await record({ memoryBytes: 100, maxBytes: 50 });
    for (let i = 0; i < 10; i++) task.append('stdout', Buffer.from('0123456789'));
    const c = collector();
    await task.follow(c.follower, 0);
    const text = Buffer.concat(c.entries.map((e) => e.data)).toString();
    assert.ok(text.startsWith('0123456789'.repeat(5)));
    assert.match(text, /output truncated after 50 bytes/);
    assert.equal(c.entries.at(-1)!.stream, 'log');
  });

  it('hands the result to a follower that attaches after the end', async () => {
    const task = await record();
    task.append('stdout', Buffer.from('x'));
    task.finish({ status: 'failed', exitCode: 2, durationMs: 1 });
    task.append('stdout', Buffer.from('ignored after the end'));
    const c = collector();
    await task.follow(c.follower, 0);
    assert.equal(c.entries.length, 1);
    assert.equal(c.results[0]?.exitCode, 2);
  });
});
