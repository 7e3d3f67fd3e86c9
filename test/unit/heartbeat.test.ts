/**
 * The coordinator's heartbeat to an agent (src/coordinator/pool/heartbeat.ts), on mocked timers:
 * a beat every interval (renewals go on while answers are late), a silent agent closed two
 * intervals after an unanswered beat, a late answer tolerated while the connection moves — up
 * to MAX_LATE_INTERVALS — and a failed beat closing.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { MAX_LATE_INTERVALS, startHeartbeat } from '../../src/coordinator/pool/heartbeat.js';

const INTERVAL = 100;

/** An agent the test answers by hand: each beat waits until `answer()` or `fail()`. */
function fakeAgent() {
  const pending: { resolve: () => void; reject: (err: Error) => void }[] = [];
  const agent = {
    beats: 0,
    closed: 0,
    progress: 0,
    /** Answers the oldest beat not answered yet. */
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

/** Lets the promise callbacks run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** One interval: a beat starts. */
async function oneInterval(): Promise<void> {
  mock.timers.tick(INTERVAL);
  await settle();
}

describe('heartbeat', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setInterval', 'setTimeout'] }));
  afterEach(() => mock.timers.reset());

  it('beats every interval while the agent answers, and stops when told', async () => {
    const agent = fakeAgent();
    for (let i = 1; i <= 5; i++) {
      await oneInterval();
      assert.equal(agent.beats, i);
      agent.answer();
      await settle();
    }
    agent.stop();
    mock.timers.tick(INTERVAL * 10);
    assert.equal(agent.beats, 5);
    assert.equal(agent.closed, 0);
  });

  it('closes a silent agent two intervals after an unanswered beat', async () => {
    const agent = fakeAgent();
    await oneInterval();
    await oneInterval();
    // Renewals go on while the first is unanswered (a lease is kept by those that arrive).
    assert.equal(agent.beats, 2);
    assert.equal(agent.closed, 0);
    mock.timers.tick(INTERVAL - 1);
    assert.equal(agent.closed, 0);
    mock.timers.tick(1);
    assert.equal(agent.closed, 1, 'the first beat, two intervals on');
    agent.stop();
  });

  it('waits for a late answer while the connection moves, up to MAX_LATE_INTERVALS', async () => {
    const agent = fakeAgent();
    await oneInterval();
    // A large input on its way: the agent reads, the answers are queued behind it. Each
    // interval a beat more; the first beat's windows are what decide.
    const windows = MAX_LATE_INTERVALS / 2;
    for (let i = 1; i < windows; i++) {
      agent.progress += 1_000_000;
      mock.timers.tick(INTERVAL);
      await settle();
      agent.progress += 1_000_000;
      mock.timers.tick(INTERVAL);
      await settle();
      assert.equal(agent.closed, 0, `moved in window ${i}`);
    }
    // The answers arrive: the link was only slow.
    for (let i = 0; i < agent.beats; i++) agent.answer();
    await settle();
    mock.timers.tick(INTERVAL * 2);
    await settle();
    assert.equal(agent.closed, 0);
    agent.stop();
  });

  it('closes a connection that keeps moving but never answers, after MAX_LATE_INTERVALS', async () => {
    const agent = fakeAgent();
    await oneInterval();
    let ticks = 0;
    while (agent.closed === 0 && ticks < MAX_LATE_INTERVALS * 2) {
      agent.progress += 1_000_000;
      mock.timers.tick(INTERVAL);
      await settle();
      ticks++;
    }
    assert.equal(agent.closed >= 1, true);
    assert.equal(ticks, MAX_LATE_INTERVALS, 'the first beat, MAX_LATE_INTERVALS on');
    agent.stop();
  });

  it('closes on a beat that fails, and not after being stopped', async () => {
    const agent = fakeAgent();
    await oneInterval();
    agent.fail();
    await settle();
    assert.equal(agent.closed, 1);
    const stopped = fakeAgent();
    await oneInterval();
    stopped.stop();
    stopped.fail();
    await settle();
    mock.timers.tick(INTERVAL * 4);
    assert.equal(stopped.closed, 0);
    agent.stop();
  });
});
