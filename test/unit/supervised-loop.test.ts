/**
 * The supervisor of long-running loops (coordinator/supervised-loop.ts): a loop that throws is
 * logged with its reason and restarted after a pause; stop() ends the pause, awaits the loop, and
 * may be called again.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { pino, type Logger } from 'pino';
import { Sleeper } from '../../src/coordinator/ha/sleeper.js';
import { Backoff } from '../../src/coordinator/pool/backoff.js';
import { SupervisedLoop } from '../../src/coordinator/supervised-loop.js';

interface Line {
  level: number;
  msg: string;
  loop?: string;
  restartInMs?: number;
  err?: { message: string };
}

function logger(): { log: Logger; lines: Line[] } {
  const lines: Line[] = [];
  const log = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as Line);
        done();
      },
    }),
  );
  return { log, lines };
}

/** Resolves once `done` holds (no deadline: the test runner has one). */
async function until(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((resolve) => setTimeout(resolve, 1));
}

describe('SupervisedLoop', () => {
  it('restarts a loop that throws, logging each failure with its reason, until it runs', async () => {
    const { log, lines } = logger();
    const sleeper = new Sleeper();
    let runs = 0;
    let ended = false;
    const loop = new SupervisedLoop(
      'replication',
      async () => {
        runs++;
        if (runs < 3) throw new Error(`boom ${runs}`);
        while (!sleeper.stopped) await sleeper.sleep(60_000);
        await new Promise((resolve) => setImmediate(resolve));
        ended = true;
      },
      { log, backoff: new Backoff(2, 4) },
    ).start();
    await until(() => runs === 3);
    assert.equal(loop.running, true);
    const failures = lines.filter((l) => l.level === 50);
    assert.deepEqual(
      failures.map((l) => [l.loop, l.msg, l.err?.message]),
      [
        ['replication', 'replication failed, restarting: boom 1', 'boom 1'],
        ['replication', 'replication failed, restarting: boom 2', 'boom 2'],
      ],
    );
    for (const l of failures) assert.equal(typeof l.restartInMs, 'number');

    // The owner ends its loop, then awaits the supervisor: the loop has returned by then.
    sleeper.stop();
    await loop.stop();
    assert.equal(ended, true);
    assert.equal(loop.running, false);
    assert.equal(runs, 3);
  });

  it('stop() ends a pause before a restart at once, and does not restart', async () => {
    const { log, lines } = logger();
    let runs = 0;
    const loop = new SupervisedLoop(
      'backup heartbeat',
      async () => {
        runs++;
        throw new Error('down');
      },
      // A pause no test would wait for: stop() must cut it short.
      { log, backoff: new Backoff(3_600_000, 3_600_000) },
    ).start();
    await until(() => lines.length === 1);
    await loop.stop();
    assert.equal(runs, 1);
    assert.equal(loop.running, false);
  });

  it('stop() is idempotent, and a stopped loop does not start again', async () => {
    const { log } = logger();
    let runs = 0;
    const sleeper = new Sleeper();
    const loop = new SupervisedLoop(
      'sweep',
      async () => {
        runs++;
        while (!sleeper.stopped) await sleeper.sleep(60_000);
      },
      { log },
    ).start();
    sleeper.stop();
    await Promise.all([loop.stop(), loop.stop()]);
    await loop.stop();
    loop.start();
    assert.equal(loop.running, false);
    assert.equal(runs, 1);
  });

  it('a loop that returns is done: no restart', async () => {
    const { log, lines } = logger();
    let runs = 0;
    const loop = new SupervisedLoop('once', async () => void runs++, { log }).start();
    await until(() => !loop.running);
    assert.equal(runs, 1);
    assert.deepEqual(lines, []);
    await loop.stop();
  });

  it('a loop that throws while it stops is logged, not restarted', async () => {
    const { log, lines } = logger();
    const sleeper = new Sleeper();
    let runs = 0;
    const loop = new SupervisedLoop(
      'replication',
      async () => {
        runs++;
        while (!sleeper.stopped) await sleeper.sleep(60_000);
        throw new Error('closed under it');
      },
      { log, backoff: new Backoff(2, 4) },
    ).start();
    sleeper.stop();
    await loop.stop();
    assert.equal(runs, 1);
    assert.deepEqual(
      lines.map((l) => l.msg),
      ['replication failed while stopping: closed under it'],
    );
  });
});
