/**
 * The coordinator's heartbeat to an agent (src/coordinator/pool/heartbeat.ts), on mocked timers:
 * one beat at a time, a silent agent closed after two intervals, a late answer tolerated while
 * the connection moves (a beat stuck behind a large input), and a failed beat closing.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { startHeartbeat } from '../../src/coordinator/pool/heartbeat.js';

const INTERVAL = 100;

/** An agent the test answers by hand: each beat waits until `answer()` or `fail()`. */
function fakeAgent() {
  const pending: { resolve: () => void; reject: (err: Error) => void }[] = [];
  const agent = {
    beats: 0,
    closed: 0,
    progress: 0,
    answer: () => pending.shift()?.resolve(),
    fail: () => pending.shift()?.reject(new Error('refused')),
    stop: () => undefined as void,
  };
  agent.stop = startHeartbeat({
    intervalMs: INTERVAL,
    beat: () => {
      agent.beats++;
      return new Promise<void>((resolve, reject) => pending.push({ resolve, reject }));
    },
    progress: () => agent.progress,
    close: () => void agent.closed++,
  });
  return agent;
}

/** Lets the promise callbacks of an answer run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('heartbeat', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setInterval', 'setTimeout'] }));
  afterEach(() => mock.timers.reset());

  it('beats every interval while the agent answers, and stops when told', async () => {
    const agent = fakeAgent();
    for (let i = 1; i <= 5; i++) {
      mock.timers.tick(INTERVAL);
      assert.equal(agent.beats, i);
      agent.answer();
      await settle();
    }
    agent.stop();
    mock.timers.tick(INTERVAL * 10);
    assert.equal(agent.beats, 5);
    assert.equal(agent.closed, 0);
  });

  it('closes a silent agent two intervals after the beat, never starting a second beat', async () => {
    const agent = fakeAgent();
    mock.timers.tick(INTERVAL);
    assert.equal(agent.beats, 1);
    // The beat's own frame leaving is not the agent's sign of life.
    agent.progress += 40;
    await settle();
    mock.timers.tick(INTERVAL * 2 - 1);
    assert.equal(agent.closed, 0);
    assert.equal(agent.beats, 1, 'no beat while one is unanswered');
    mock.timers.tick(1);
    assert.equal(agent.closed, 1);
    agent.stop();
  });

  it('waits for a late answer while the connection moves, and closes once it stops moving', async () => {
    const agent = fakeAgent();
    mock.timers.tick(INTERVAL);
    await settle();
    // A large input on its way: the agent reads, the beat's answer is queued behind it.
    for (let i = 0; i < 10; i++) {
      agent.progress += 1_000_000;
      mock.timers.tick(INTERVAL * 2);
      assert.equal(agent.closed, 0, `moved in window ${i}`);
    }
    assert.equal(agent.beats, 1);
    agent.answer();
    await settle();
    mock.timers.tick(INTERVAL);
    assert.equal(agent.beats, 2, 'beating again after the answer');
    await settle();
    // Now nothing moves and nothing answers.
    mock.timers.tick(INTERVAL * 2);
    assert.equal(agent.closed, 1);
    agent.stop();
  });

  it('closes on a beat that fails, and not after being stopped', async () => {
    const agent = fakeAgent();
    mock.timers.tick(INTERVAL);
    agent.fail();
    await settle();
    assert.equal(agent.closed, 1);
    const stopped = fakeAgent();
    mock.timers.tick(INTERVAL);
    stopped.stop();
    stopped.fail();
    await settle();
    mock.timers.tick(INTERVAL * 4);
    assert.equal(stopped.closed, 0);
    agent.stop();
  });
});
