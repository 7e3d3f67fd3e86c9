/**
 * The per-user compile service hosting `muster build`'s builds (src/cli/cc/hosted-build.ts,
 * build-control.ts) over a real Unix socket: a build's compiles (its tag in their environment)
 * use its own session and count in its own counts as well as the service's; the shims'
 * fallback log in its directory is its; a front end that goes away closes its build as failed;
 * builds the service must not host are refused; hostile control frames close only their
 * connection.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { MUSTER_VERSION } from '../../src/common/version.js';
import { encodeJsonFrame, FrameDecoder } from '../../src/protocol/framing.js';
import {
  BUILD_ENV,
  parseControlMessage,
  type ControlMessage,
} from '../../src/cli/cc/build-control.js';
import { formatSummary, type BuildCounts } from '../../src/cli/cc/build-summary.js';
import { DeferredStores } from '../../src/cli/cc/deferred-stores.js';
import type { BuildPorts, OpenBuild } from '../../src/cli/cc/hosted-build.js';
import { CompileService } from '../../src/cli/cc/service.js';
import { installedLauncherPaths } from '../../src/cli/cc/launch-env.js';
import { environFromList, environToList } from '../../src/cli/cc/shim-protocol.js';
import { StatsCounter } from '../../src/cli/cc/stats.js';
import { FakeRecorder, hourAhead, InMemorySharedCache, until } from '../helpers/cc-fakes.js';
import { fakeShim } from '../helpers/fake-shim.js';
import { requireGcc } from '../helpers/gcc.js';

const log = pino({ level: 'silent' });
const root = mkdtempSync(join(tmpdir(), 'muster-cc-hosted-'));
after(() => rmSync(root, { recursive: true, force: true }));
const SHIM = '/opt/muster/dist/native/muster-cc';

/** A control connection as `muster build` holds it: frames out, messages in. */
class Control {
  readonly socket: Socket;
  readonly messages: ControlMessage[] = [];
  readonly bad: unknown[] = [];
  ended = false;
  readonly #decoder = new FrameDecoder(1024 * 1024);

  constructor(path: string) {
    this.socket = connect(path);
    this.socket.on('data', (chunk: Buffer) => {
      for (const frame of this.#decoder.push(chunk)) {
        const message = frame.kind === 'json' ? parseControlMessage(frame.value) : null;
        if (message === null) this.bad.push(frame);
        else this.messages.push(message);
      }
    });
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => (this.ended = true));
  }

  send(message: object): void {
    this.socket.write(encodeJsonFrame(message));
  }

  async next(type: ControlMessage['type']): Promise<ControlMessage> {
    await until(() => this.messages.some((m) => m.type === type) || this.ended, `a ${type}`);
    const found = this.messages.find((m) => m.type === type);
    assert.ok(found !== undefined, `no ${type}: ${JSON.stringify(this.messages)}`);
    return found;
  }
}

interface Opened {
  readonly request: Parameters<OpenBuild>[0];
  closed?: { exitCode: number | null; counts: BuildCounts };
}

function fakeOpenBuild(
  opened: Opened[],
  ports: Awaited<BuildPorts['ports']>,
  buildId = 42,
): OpenBuild {
  return (request, say) => {
    const entry: Opened = { request };
    opened.push(entry);
    say(`muster: build ${buildId} opened\n`);
    return {
      ports: Promise.resolve(ports),
      close: (exitCode, counts) => {
        entry.closed = { exitCode, counts };
        return Promise.resolve({ buildId });
      },
    };
  };
}

let n = 0;
function setUp(
  openBuild: OpenBuild | undefined,
  onOutdated?: (version: string) => void,
): {
  service: CompileService;
  socket: string;
  cacheEnv: Record<string, string>;
  src: string;
  dir: string;
} {
  n++;
  const xdg = join(root, `xdg-${n}`);
  const src = join(root, `src-${n}`);
  mkdirSync(src, { recursive: true });
  writeFileSync(join(src, 'x.c'), 'int x(void) { return 1; }\n');
  writeFileSync(join(src, 'y.c'), 'int y(void) { return 2; }\n');
  const dir = mkdtempSync(join(root, `build-${n}-`));
  const service = new CompileService({
    cacheDir: join(xdg, 'muster', 'cc'),
    log,
    shimPath: SHIM,
    fileHashes: hourAhead,
    ...(openBuild === undefined ? {} : { openBuild }),
    ...(onOutdated === undefined ? {} : { onOutdated }),
  });
  return {
    service,
    socket: join(root, `sock-${n}`, 'cc.sock'),
    cacheEnv: { XDG_CACHE_HOME: xdg },
    src,
    dir,
  };
}

function buildOpen(
  cacheEnv: Record<string, string>,
  dir: string,
  overrides: Record<string, unknown> = {},
): object {
  return {
    type: 'build-open',
    v: 1,
    version: MUSTER_VERSION,
    launcher: SHIM,
    command: 'make -j2',
    cwd: '/tmp',
    env: environToList({ ...process.env, ...cacheEnv }),
    placement: 'local',
    noCache: false,
    dir,
    ...overrides,
  };
}

/** A control connection with a build open on it (accepted). */
async function openedBuild(t: {
  socket: string;
  cacheEnv: Record<string, string>;
  dir: string;
}): Promise<Control> {
  const control = new Control(t.socket);
  control.send(buildOpen(t.cacheEnv, t.dir));
  await control.next('build-accepted');
  return control;
}

describe('compile service: hosted builds', () => {
  it("counts a build's compiles in its own counts and session, and in the service's", async () => {
    requireGcc();
    const shared = new InMemorySharedCache();
    const recorder = new FakeRecorder();
    const opened: Opened[] = [];
    const t = setUp(fakeOpenBuild(opened, { sharedCache: shared, recorder }));
    await t.service.start(t.socket);
    try {
      const control = new Control(t.socket);
      const link = join(t.dir, 'cc.sock');
      control.send(
        buildOpen({ ...t.cacheEnv, MUSTER_CONFIG_DIR: 'conf/muster' }, t.dir, { socket: link }),
      );
      const accepted = await control.next('build-accepted');
      assert.ok(accepted.type === 'build-accepted');
      const tag = accepted.tag;
      // The command's environment: the front end's own, with the launcher in place.
      const commandEnv = environFromList(accepted.env);
      assert.equal(commandEnv[BUILD_ENV], tag);
      assert.equal(commandEnv['MUSTER_CC_SOCKET'], link);
      assert.equal(commandEnv['MUSTER_CONFIG_DIR'], 'conf/muster', 'left as the command has it');
      const masquerade = installedLauncherPaths().masquerade;
      assert.equal(commandEnv['PATH']?.split(':')[0], masquerade);
      assert.equal(commandEnv['MUSTER_CC_MASQUERADE'], masquerade);
      // The session's lines reach the front end.
      assert.deepEqual(await control.next('say'), {
        type: 'say',
        text: 'muster: build 42 opened\n',
      });
      assert.equal(opened[0]?.request.command, 'make -j2');
      assert.equal(opened[0]?.request.env['XDG_CACHE_HOME'], t.cacheEnv['XDG_CACHE_HOME']);
      // A path the build names relative to its directory, read by the service from `/`.
      assert.equal(opened[0]?.request.env['MUSTER_CONFIG_DIR'], '/tmp/conf/muster');

      const mine = await fakeShim({
        socket: t.socket,
        argv: ['gcc', '-c', 'x.c'],
        cwd: t.src,
        env: { ...process.env, [BUILD_ENV]: tag },
      });
      assert.equal(mine.code, 0);
      // Not the build's: no tag, or another one.
      for (const env of [process.env, { ...process.env, [BUILD_ENV]: 'not-a-build-tag' }]) {
        const other = await fakeShim({
          socket: t.socket,
          argv: ['gcc', '-c', 'y.c'],
          cwd: t.src,
          env,
        });
        assert.equal(other.code, 0);
      }
      assert.ok(existsSync(join(t.src, 'x.o')));
      // A shim of this build that could not reach the service.
      writeFileSync(join(t.dir, 'cc-fallbacks.log'), '1796630000 eof\n');

      const startedAt = Date.now() - 61_000;
      control.send({ type: 'build-close', exitCode: 0, summary: { startedAt, code: 0 } });
      const closed = await control.next('build-closed');
      assert.ok(closed.type === 'build-closed');
      assert.equal(closed.buildId, 42);
      // The summary the native front end prints, as the Node front end writes it.
      const json = JSON.parse(closed.json ?? '') as Record<string, unknown>;
      const durationMs = json['durationMs'];
      // The time runs from the start the front end gave to the close's end.
      assert.ok(typeof durationMs === 'number' && durationMs >= 61_000, String(durationMs));
      assert.equal(closed.summary, formatSummary(closed.counts, durationMs, 42));
      assert.match(
        closed.summary ?? '',
        /^muster: 2 jobs \(1 compile\): .*; 1 min 0[12] s — build 42\n$/,
      );
      assert.equal(json['buildId'], 42);
      assert.equal(json['exitCode'], 0);
      assert.equal(json['compiles'], 1);
      assert.equal(closed.offline, false);
      assert.equal(closed.counts.compiles, 1);
      assert.equal(closed.counts.local, 1);
      assert.equal(closed.counts.jobs, 2, 'the compile and the shim fallback');
      assert.deepEqual(closed.counts.fallbackReasons, { eof: 1 });
      await until(() => control.ended, 'the control connection to close');
      assert.equal(opened[0]?.closed?.exitCode, 0);
      assert.equal(opened[0]?.closed?.counts.compiles, 1);
      // Its result was kept and sent before the close answered; its record is the build's.
      assert.equal(shared.entries.size, 1);
      assert.equal(recorder.records.length, 1);
      assert.equal(t.service.stats.totals.compiles, 3);
      assert.equal(t.service.stats.totals.fallbacks, 1);
    } finally {
      await t.service.stop();
    }
  });

  it('closes the build of a front end that went away as failed', async () => {
    const opened: Opened[] = [];
    const t = setUp(fakeOpenBuild(opened, {}));
    await t.service.start(t.socket);
    try {
      const control = await openedBuild(t);
      control.socket.destroy();
      await until(() => opened[0]?.closed !== undefined, 'the build to close');
      assert.equal(opened[0]?.closed?.exitCode, null);
    } finally {
      await t.service.stop();
    }
  });

  it('closes the builds it hosts first when it stops, and tells them', async () => {
    const opened: Opened[] = [];
    const t = setUp(fakeOpenBuild(opened, {}));
    await t.service.start(t.socket);
    const control = new Control(t.socket);
    try {
      control.send(buildOpen(t.cacheEnv, t.dir));
      await control.next('build-accepted');
      assert.equal(t.service.hostedBuilds, 1);
    } finally {
      await t.service.stop();
    }
    const closed = await control.next('build-closed');
    assert.ok(closed.type === 'build-closed');
    assert.ok(
      control.messages.some(
        (m) => m.type === 'say' && m.text.includes('the compile service is stopping'),
      ),
      JSON.stringify(control.messages),
    );
    assert.equal(opened[0]?.closed?.exitCode, null);
  });

  it('does not idle out while a build closes after its front end left', async () => {
    let release: () => void = () => undefined;
    const hang = new Promise<void>((resolve) => (release = resolve));
    const closes: (number | null)[] = [];
    const t = setUp(() => ({
      ports: Promise.resolve({}),
      close: async (exitCode) => {
        closes.push(exitCode);
        await hang;
        return { buildId: 1 };
      },
    }));
    await t.service.start(t.socket);
    try {
      const control = await openedBuild(t);
      control.socket.destroy();
      await until(() => closes.length === 1, 'the close to start');
      await until(() => t.service.activeConnections === 0, 'the connection to go');
      assert.equal(t.service.hostedBuilds, 1);
      assert.equal(t.service.idleMs(), 0, 'a build still closing keeps the service from idling');
      release();
      await until(() => t.service.hostedBuilds === 0, 'the build to leave');
      assert.deepEqual(closes, [null]);
    } finally {
      release();
      await t.service.stop();
    }
  });

  it('sends a long line cut, not a message the front end would refuse', async () => {
    const t = setUp((_request, say) => {
      say('x'.repeat(100_000));
      return { ports: Promise.resolve({}), close: () => Promise.resolve({ buildId: 1 }) };
    });
    await t.service.start(t.socket);
    try {
      const control = new Control(t.socket);
      control.send(buildOpen(t.cacheEnv, t.dir));
      const said = await control.next('say');
      assert.ok(said.type === 'say' && said.text.length < 10_000);
      assert.deepEqual(control.bad, []);
    } finally {
      await t.service.stop();
    }
  });

  it('refuses a build of another version, installation or cache, or when it hosts none', async () => {
    const opened: Opened[] = [];
    const outdated: string[] = [];
    const t = setUp(fakeOpenBuild(opened, {}), (version) => outdated.push(version));
    const bare = setUp(undefined);
    await t.service.start(t.socket);
    await bare.service.start(bare.socket);
    try {
      const cases: [string, object, RegExp][] = [
        [
          t.socket,
          buildOpen(t.cacheEnv, t.dir, { version: '0.0.1-old' }),
          /is Muster .*not 0\.0\.1-old/,
        ],
        [
          t.socket,
          buildOpen(t.cacheEnv, t.dir, { launcher: '/elsewhere/muster-cc' }),
          /another installation/,
        ],
        // Another installation of another version: not an upgrade of this one.
        [
          t.socket,
          buildOpen(t.cacheEnv, t.dir, { launcher: '/elsewhere/muster-cc', version: '9.9.9' }),
          /another installation/,
        ],
        [t.socket, buildOpen({ XDG_CACHE_HOME: join(root, 'other') }, t.dir), /cache is/],
        [
          t.socket,
          buildOpen({ ...t.cacheEnv, NODE_EXTRA_CA_CERTS: '/etc/other-ca.pem' }, t.dir),
          /other certificates/,
        ],
        [bare.socket, buildOpen(bare.cacheEnv, bare.dir), /does not host builds/],
      ];
      for (const [socket, open, why] of cases) {
        const control = new Control(socket);
        control.send(open);
        const refused = await control.next('build-refused');
        assert.ok(refused.type === 'build-refused');
        assert.match(refused.reason, why);
        await until(() => control.ended, 'the refused connection to close');
      }
      assert.equal(opened.length, 0);
      // Another version asked: the service's owner hears of it (the per-user one then retires).
      assert.deepEqual(outdated, ['0.0.1-old']);
    } finally {
      await t.service.stop();
      await bare.service.stop();
    }
  });

  it('closes only the connection of hostile control frames', async () => {
    requireGcc();
    const opened: Opened[] = [];
    const t = setUp(fakeOpenBuild(opened, {}));
    await t.service.start(t.socket);
    try {
      // A close with no build, a malformed open, a path that is not absolute.
      for (const frame of [
        { type: 'build-close', exitCode: 0 },
        { ...buildOpen(t.cacheEnv, t.dir), placement: 'everywhere' },
        buildOpen(t.cacheEnv, 'relative/dir'),
        { ...buildOpen(t.cacheEnv, t.dir), extra: true },
      ]) {
        const control = new Control(t.socket);
        control.send(frame);
        await until(() => control.ended, 'the connection to close');
        assert.deepEqual(control.messages, []);
      }
      assert.equal(opened.length, 0);
      // A second open on the control connection of an open build: closed, the build failed.
      const control = await openedBuild(t);
      control.send(buildOpen(t.cacheEnv, t.dir));
      await until(() => control.ended, 'the connection to close');
      await until(() => opened[0]?.closed !== undefined, 'the build to close');
      assert.equal(opened[0]?.closed?.exitCode, null);
      // The service still compiles.
      const out = await fakeShim({ socket: t.socket, argv: ['gcc', '-c', 'x.c'], cwd: t.src });
      assert.equal(out.code, 0);
    } finally {
      await t.service.stop();
    }
  });

  it("ignores a fallback log in a directory that is not the user's own", async () => {
    const opened: Opened[] = [];
    const t = setUp(fakeOpenBuild(opened, {}));
    await t.service.start(t.socket);
    try {
      chmodSync(t.dir, 0o755);
      writeFileSync(join(t.dir, 'cc-fallbacks.log'), '1796630000 eof\n');
      const control = await openedBuild(t);
      control.send({ type: 'build-close', exitCode: 2 });
      const closed = await control.next('build-closed');
      assert.ok(closed.type === 'build-closed');
      assert.equal(closed.counts.fallbacks, 0);
      assert.ok(existsSync(join(t.dir, 'cc-fallbacks.log')), 'left alone');
      assert.equal(opened[0]?.closed?.exitCode, 2);
    } finally {
      await t.service.stop();
    }
  });
});

describe('build control messages', () => {
  it('takes only well-formed messages from the service', () => {
    const counts = {
      jobs: 1,
      compiles: 1,
      remote: 0,
      local: 1,
      cacheHits: 0,
      cacheMisses: 1,
      fallbacks: 0,
      errors: 0,
      reruns: 0,
      fallbackReasons: {},
    };
    assert.deepEqual(
      parseControlMessage({ type: 'build-accepted', tag: 'abcdefgh12', env: ['A=b', 'C='] }),
      { type: 'build-accepted', tag: 'abcdefgh12', env: ['A=b', 'C='] },
    );
    assert.ok(parseControlMessage({ type: 'build-closed', counts, buildId: 3, offline: false }));
    const withTexts = {
      type: 'build-closed',
      counts,
      buildId: null,
      offline: true,
      summary: 'muster: …\n',
      json: '{}',
    };
    assert.deepEqual(parseControlMessage(withTexts), withTexts);
    for (const bad of [
      null,
      'say',
      { type: 'build-accepted', tag: 'abcdefgh12' },
      { type: 'build-accepted', tag: 'abcdefgh12', env: 'A=b' },
      { type: 'build-accepted', tag: 'abcdefgh12', env: ['A=b', 3] },
      { type: 'build-accepted', tag: 'abcdefgh12', env: ['no-equals-sign'] },
      { type: 'build-accepted', tag: 'short', env: [] },
      { type: 'build-accepted', tag: '../../etc/passwd', env: [] },
      { type: 'build-closed', counts, buildId: 3, offline: false, summary: 7 },
      { type: 'build-closed', counts, buildId: 3, offline: false, json: 'x'.repeat(70_000) },
      { type: 'say', text: 'x'.repeat(70_000) },
      { type: 'build-closed', counts: { ...counts, jobs: -1 }, buildId: 3, offline: false },
      {
        type: 'build-closed',
        counts: { ...counts, fallbackReasons: { x: 'y' } },
        buildId: 3,
        offline: false,
      },
      { type: 'build-closed', counts, buildId: 0, offline: false },
      { type: 'build-closed', counts, buildId: 3 },
      { type: 'exit' },
    ])
      assert.equal(parseControlMessage(bad), null, JSON.stringify(bad)?.slice(0, 80));
  });
});

describe('counters of a hosted build', () => {
  it('keeps its own totals and writes nothing but through its parent', async () => {
    const dir = join(root, 'stats-parent');
    const parent = new StatsCounter(dir, { flushDelayMs: 1 });
    const child = new StatsCounter(join(root, 'never-written'), { parent, flushDelayMs: 1 });
    child.add('compiles');
    child.localReason('no-agent');
    child.fallback('eof', 2);
    parent.add('compiles');
    assert.equal(child.totals.compiles, 1);
    assert.equal(child.totals.fallbacks, 2);
    assert.equal(parent.totals.compiles, 2);
    assert.deepEqual(parent.totals.fallbackReasons, { eof: 2 });
    assert.deepEqual(parent.totals.localReasons, { 'no-agent': 1 });
    await child.flush();
    await parent.flush();
    child.close();
    parent.close();
    assert.equal(existsSync(join(root, 'never-written')), false);
    assert.ok(existsSync(join(dir, 'stats.json')));
  });
});

describe('kept results: hurry', () => {
  it('runs the results queued now at once, busy or not; later ones wait again', async () => {
    const stores = new DeferredStores({ busy: () => true, maxItems: 10, maxBytes: 1 << 20 });
    const ran: string[] = [];
    const add = (name: string): Promise<void> =>
      stores.add(1, () => {
        ran.push(name);
        return Promise.resolve();
      });
    const first = [add('a'), add('b')];
    assert.deepEqual(ran, []);
    stores.hurry();
    await Promise.all(first);
    assert.deepEqual(ran, ['a', 'b']);
    void add('c');
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(ran, ['a', 'b'], 'a result queued after hurry waits for a free core');
    assert.equal(stores.pending, 1);
    stores.drain();
    await until(() => ran.length === 3, 'the last result');
  });
});
