/**
 * The compile service's coordinator guard (src/cli/cc/coordinator-guard.ts) and its probe
 * (coordinator-probe.ts): a request that got no answer pauses the others (they fail at once)
 * until the probe — one at a time, its wait growing — hears the coordinator again; on fake
 * timers (no real waits). Then the probe over a real API client: it asks the backup of a
 * primary that is away, switches to it, and says "not yet" until the backup has taken over.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApiClient, BACKUP_HEADER } from '../../src/cli/api-client.js';
import { BackupCache } from '../../src/cli/backup-cache.js';
import {
  CoordinatorGuard,
  CoordinatorPaused,
  warnUnlessPaused,
  type GuardTimers,
  type Probe,
} from '../../src/cli/cc/coordinator-guard.js';
import { coordinatorProbe, takesWork } from '../../src/cli/cc/coordinator-probe.js';
import { MusterError } from '../../src/protocol/errors.js';
import { FakeCoordinator } from '../helpers/cli-fake-coordinator.js';

/** Timers the test moves by hand; `waits` lists each wait asked for, in order. */
class FakeTimers implements GuardTimers {
  ms = 0;
  readonly waits: number[] = [];
  #due: { at: number; fn: () => void; cancelled: boolean }[] = [];

  now(): number {
    return this.ms;
  }

  after(ms: number, fn: () => void): { cancel(): void } {
    const timer = { at: this.ms + ms, fn, cancelled: false };
    this.waits.push(ms);
    this.#due.push(timer);
    return { cancel: () => void (timer.cancelled = true) };
  }

  /** Timers set and not yet run or cancelled. */
  get pending(): number {
    return this.#due.filter((t) => !t.cancelled).length;
  }

  /** Moves the clock by `ms`, running what falls due (and what that sets, when due). */
  async advance(ms: number): Promise<void> {
    const end = this.ms + ms;
    for (;;) {
      await settle();
      const next = this.#due
        .filter((t) => !t.cancelled && t.at <= end)
        .sort((a, b) => a.at - b.at)[0];
      if (next === undefined) break;
      this.#due = this.#due.filter((t) => t !== next);
      this.ms = next.at;
      next.fn();
    }
    this.ms = end;
    await settle();
  }
}

/** Lets promise callbacks run (the probe's answer, the guard's reaction). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

const noAnswer = (): MusterError => new MusterError('UNREACHABLE', 'connection refused');

/** A probe whose answers the test gives, one call at a time. */
function scriptedProbe(): {
  probe: Probe;
  calls: number;
  signals: AbortSignal[];
  answer(result: boolean | Error): void;
  readonly waiting: boolean;
} {
  let settleNext: ((result: boolean | Error) => void) | undefined;
  const state = {
    calls: 0,
    signals: [] as AbortSignal[],
    probe: (signal: AbortSignal): Promise<boolean> => {
      state.calls++;
      state.signals.push(signal);
      return new Promise<boolean>((resolve, reject) => {
        settleNext = (result) => (result instanceof Error ? reject(result) : resolve(result));
      });
    },
    answer(result: boolean | Error): void {
      const next = settleNext;
      assert.ok(next, 'no probe is waiting for an answer');
      settleNext = undefined;
      next(result);
    },
    get waiting(): boolean {
      return settleNext !== undefined;
    },
  };
  return state;
}

describe('the coordinator guard', () => {
  it('without a probe: a no-answer pauses every request for pauseMs; an error answer pauses nothing', async () => {
    const timers = new FakeTimers();
    const guard = new CoordinatorGuard({ pauseMs: 30_000, timers });
    await assert.rejects(
      guard.run(() => Promise.reject(new MusterError('CONFLICT', 'no'))),
      /no/,
    );
    assert.equal(guard.paused, false, 'the coordinator answered');
    await assert.rejects(
      guard.run(() => Promise.reject(noAnswer())),
      /refused/,
    );
    let ran = 0;
    const work = async (): Promise<string> => {
      ran++;
      return 'done';
    };
    await assert.rejects(guard.run(work), /did not answer a moment ago/);
    await timers.advance(29_999);
    await assert.rejects(guard.run(work), /did not answer a moment ago/);
    assert.equal(ran, 0);
    await timers.advance(1);
    assert.equal(await guard.run(work), 'done');
    assert.equal(ran, 1);
    assert.equal(timers.pending, 0, 'no timer without a probe');
  });

  it('with a probe: paused until it hears the coordinator, one probe at a time, waits 1 s doubling to 30 s', async () => {
    const timers = new FakeTimers();
    const p = scriptedProbe();
    const changes: boolean[] = [];
    const guard = new CoordinatorGuard({
      probe: p.probe,
      timers,
      onChange: (paused) => changes.push(paused),
    });
    await assert.rejects(guard.run(() => Promise.reject(noAnswer())));
    assert.deepEqual(changes, [true]);
    // Compiles meanwhile fail at once, without asking.
    let asked = 0;
    const work = async (): Promise<number> => ++asked;
    await assert.rejects(guard.run(work), /did not answer a moment ago/);
    assert.equal(p.calls, 0, 'the first probe waits a second');
    await timers.advance(1_000);
    assert.equal(p.calls, 1);
    // A probe that takes long: no second one meanwhile, requests still fail at once.
    await timers.advance(120_000);
    assert.equal(p.calls, 1, 'one probe at a time');
    await assert.rejects(guard.run(work), /did not answer a moment ago/);
    // No answers: the wait doubles, up to 30 s.
    for (let i = 0; i < 7; i++) {
      p.answer(noAnswer());
      await settle();
      await timers.advance(30_000);
    }
    assert.deepEqual(timers.waits, [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
    assert.equal(p.calls, 8);
    assert.equal(asked, 0, 'no compile asked a coordinator that does not answer');
    // An answer: the pause ends at once (not 30 s after it began).
    p.answer(true);
    await settle();
    assert.equal(guard.paused, false);
    assert.deepEqual(changes, [true, false]);
    assert.equal(await guard.run(work), 1);
    assert.equal(timers.pending, 0, 'nothing scheduled once it answers');
    // A pause right after that resume is a flap (the probe's yes was not the requests'): the
    // wait keeps growing from where it was.
    await assert.rejects(guard.run(() => Promise.reject(noAnswer())));
    assert.equal(timers.waits.at(-1), 30_000);
    await timers.advance(30_000);
    assert.equal(p.calls, 9);
    p.answer(true);
    await settle();
    assert.equal(guard.paused, false);
    // A pause long after the last resume starts from a second again.
    await timers.advance(30_000);
    await assert.rejects(guard.run(() => Promise.reject(noAnswer())));
    await timers.advance(1_000);
    assert.equal(p.calls, 10);
    assert.equal(timers.waits.at(-1), 1_000);
  });

  it('a pause soon after a resume doubles the wait instead of asking every second', async () => {
    const timers = new FakeTimers();
    const p = scriptedProbe();
    const guard = new CoordinatorGuard({ probe: p.probe, timers });
    const flap = async (): Promise<void> => {
      await assert.rejects(guard.run(() => Promise.reject(noAnswer())));
      await timers.advance(timers.waits.at(-1)!);
      p.answer(true);
      await settle();
      assert.equal(guard.paused, false);
    };
    for (let i = 0; i < 7; i++) await flap();
    assert.deepEqual(timers.waits, [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
  });

  it('"not yet" (a backup standing by) asks again after a second, for a minute; an error answer ends the pause', async () => {
    const timers = new FakeTimers();
    const p = scriptedProbe();
    const guard = new CoordinatorGuard({ probe: p.probe, timers });
    await assert.rejects(guard.run(() => Promise.reject(noAnswer())));
    await timers.advance(1_000);
    p.answer(noAnswer());
    await timers.advance(2_000);
    p.answer(false);
    await settle();
    assert.equal(guard.paused, true);
    assert.equal(timers.waits.at(-1), 1_000, 'not yet: the takeover is near');
    // Still standing by after a minute: it may not take over soon; the wait grows again.
    for (let i = 0; i < 60; i++) {
      await timers.advance(1_000);
      p.answer(false);
    }
    await settle();
    assert.deepEqual(timers.waits.slice(-3), [1_000, 1_000, 2_000]);
    await timers.advance(2_000);
    p.answer(false);
    await settle();
    assert.equal(timers.waits.at(-1), 4_000);
    await timers.advance(4_000);
    p.answer(new MusterError('UNAUTHORIZED', 'log in again'));
    await settle();
    assert.equal(guard.paused, false, 'an error is the coordinator speaking');
  });

  it('stop() aborts the probe in flight and sets no more timers', async () => {
    const timers = new FakeTimers();
    const p = scriptedProbe();
    const guard = new CoordinatorGuard({ probe: p.probe, timers });
    await assert.rejects(guard.run(() => Promise.reject(noAnswer())));
    await timers.advance(1_000);
    assert.equal(p.signals[0]?.aborted, false);
    guard.stop();
    assert.equal(p.signals[0]?.aborted, true);
    p.answer(noAnswer());
    await timers.advance(60_000);
    assert.equal(p.calls, 1);
    assert.equal(timers.pending, 0);
    // Stopped while waiting for the next probe: that timer is cancelled.
    const q = scriptedProbe();
    const other = new CoordinatorGuard({ probe: q.probe, timers });
    await assert.rejects(other.run(() => Promise.reject(noAnswer())));
    assert.equal(timers.pending, 1);
    other.stop();
    assert.equal(timers.pending, 0);
    await timers.advance(60_000);
    assert.equal(q.calls, 0);
  });

  it('what a pause turns away is logged at debug level only; the request that found no answer warns', async () => {
    const timers = new FakeTimers();
    const guard = new CoordinatorGuard({ pauseMs: 30_000, timers });
    const lines: { level: string; message: string }[] = [];
    const at =
      (level: string) =>
      (...args: unknown[]): void =>
        void lines.push({ level, message: String(args[1]) });
    const log = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
    const attempt = async (work: () => Promise<unknown>): Promise<void> => {
      try {
        await guard.run(work);
      } catch (err) {
        warnUnlessPaused(log, err, 'lookup failed');
      }
    };
    await attempt(() => Promise.reject(noAnswer()));
    for (let i = 0; i < 5; i++) await attempt(() => Promise.resolve('never run'));
    await assert.rejects(
      guard.run(() => Promise.resolve()),
      (err) => err instanceof CoordinatorPaused && err.code === 'UNREACHABLE',
    );
    await attempt(() => Promise.reject(new MusterError('CONFLICT', 'no')));
    assert.deepEqual(
      lines.map((l) => l.level),
      ['warn', 'debug', 'debug', 'debug', 'debug', 'debug', 'debug'],
      'the first no-answer warns; every request the pause turned away is at debug',
    );
    await timers.advance(30_000);
    await attempt(() => Promise.reject(new MusterError('CONFLICT', 'no')));
    assert.equal(lines.at(-1)?.level, 'warn', 'after the pause: an error answer warns');
  });

  it('a no-answer of a request started before the pause ended is old news', async () => {
    const timers = new FakeTimers();
    const p = scriptedProbe();
    const guard = new CoordinatorGuard({ probe: p.probe, timers });
    let failOld: () => void = () => undefined;
    const old = guard.run(
      () => new Promise<void>((_resolve, reject) => (failOld = () => reject(noAnswer()))),
    );
    await assert.rejects(guard.run(() => Promise.reject(noAnswer())));
    await timers.advance(1_000);
    p.answer(true);
    await settle();
    assert.equal(guard.paused, false);
    failOld();
    await assert.rejects(old, /refused/);
    assert.equal(guard.paused, false, 'the job cut long ago pauses nothing now');
    // A request started now that gets no answer does.
    await assert.rejects(guard.run(() => Promise.reject(noAnswer())));
    assert.equal(guard.paused, true);
  });
});

describe('the coordinator probe', () => {
  it('takes work: a primary, an active backup, a standby backup that reaches its primary again', () => {
    assert.equal(takesWork({ role: 'primary' }), true);
    assert.equal(takesWork({ role: 'backup-active', primary: { reachable: false } }), true);
    assert.equal(takesWork({ role: 'backup-standby', primary: { reachable: true } }), true);
    assert.equal(takesWork({ role: 'backup-standby', primary: { reachable: false } }), false);
    assert.equal(takesWork({ role: 'backup-standby' }), false);
    assert.equal(takesWork({ role: 'backup-standby', primary: null }), false);
    assert.equal(takesWork('something'), true, 'an answer all the same');
  });

  describe('over a real API client', () => {
    let backup: FakeCoordinator;
    let dir: string;
    let role = 'backup-standby';
    let asked = 0;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'muster-probe-'));
      backup = await FakeCoordinator.start();
      backup.on('GET', '/status', () => {
        asked++;
        return { json: { role, primary: { reachable: false } } };
      });
    });
    after(async () => {
      await backup.close();
      await rm(dir, { recursive: true, force: true });
    });

    it('asks the backup of a primary that is away, switches to it, and says yes once it took over', async () => {
      // A primary that answered once (naming its backup), then went away.
      const primary = await FakeCoordinator.start();
      primary.on('GET', '/status', () => ({
        json: { role: 'primary' },
        headers: { [BACKUP_HEADER]: backup.url },
      }));
      const notes: string[] = [];
      const client = new ApiClient({
        url: primary.url,
        token: 't',
        backups: new BackupCache(join(dir, 'backups.json')),
        notify: (text) => notes.push(text),
      });
      const probe = coordinatorProbe(client);
      const signal = new AbortController().signal;
      assert.equal(await probe(signal), true);
      await primary.close();
      assert.equal(await probe(signal), false, 'the backup stands by: not yet');
      assert.equal(client.usingBackup, backup.url);
      assert.match(notes.join(''), /is unreachable; using its backup/);
      role = 'backup-active';
      assert.equal(await probe(signal), true);
      assert.equal(asked, 2);
    });

    it('a stopped probe is a cancelled request, not an answer', async () => {
      const client = new ApiClient({ url: backup.url, token: 't' });
      const controller = new AbortController();
      controller.abort();
      await assert.rejects(coordinatorProbe(client)(controller.signal), (err: unknown) => {
        assert.ok(err instanceof MusterError);
        assert.equal(err.code, 'CONNECTION_CLOSED');
        return true;
      });
    });
  });
});
