/**
 * The compile service against real gcc, driven by a fake shim that speaks the shim protocol as
 * native/muster-cc.c does. The files' clock is moved an hour ahead so fresh test files are not
 * "too new" (the 2 s rule) — but for the test of that rule.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  symlinkSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
  existsSync,
  renameSync,
  statSync,
  utimesSync,
} from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { encodeJsonFrame } from '../../src/protocol/framing.js';
import type { CacheLookupView } from '../../src/api/views/compile.js';
import { explain } from '../../src/cli/cc/explain.js';
import type { NewCompileResult, SharedCache } from '../../src/cli/cc/ports.js';
import { watchIdle } from '../../src/cli/cc/idle-exit.js';
import { CompileService } from '../../src/cli/cc/service.js';
import { readStats } from '../../src/cli/cc/stats.js';
import { requireGcc } from '../helpers/gcc.js';
import { FakeRecorder, hourAhead, InMemorySharedCache, until } from '../helpers/cc-fakes.js';
import { fakeShim, sendRaw } from '../helpers/fake-shim.js';

const log = pino({ level: 'silent' });
class FakeSharedCache implements SharedCache {
  readonly lookups: { direct?: string }[] = [];
  readonly stored: NewCompileResult[] = [];
  constructor(private readonly failing: boolean) {}
  async lookup(request: { direct?: string }): Promise<CacheLookupView> {
    this.lookups.push(request);
    if (this.failing) throw new Error('connect ECONNREFUSED 127.0.0.1:1');
    return { manifest: [], entries: [] };
  }
  async fetchBlob(): Promise<Buffer> {
    throw new Error('no blobs here');
  }
  async store(result: NewCompileResult): Promise<void> {
    if (this.failing) throw new Error('connect ECONNREFUSED 127.0.0.1:1');
    this.stored.push(result);
  }
}

describe('compile service (real gcc, fake shim)', () => {
  const gcc = requireGcc();
  const root = mkdtempSync(join(tmpdir(), 'muster-cc-service-'));
  const src = join(root, 'src');
  const cacheDir = join(root, 'cache');
  const socket = join(root, 'run', 'cc.sock');
  const recorder = new FakeRecorder();
  const shared = new FakeSharedCache(false);
  let service: CompileService;

  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' };
  const cc = (args: string[], extra: Partial<Parameters<typeof fakeShim>[0]> = {}) =>
    fakeShim({ socket, argv: ['gcc', ...args], cwd: src, env, ...extra });

  before(async () => {
    mkdirSync(join(src, 'inc'), { recursive: true });
    writeFileSync(join(src, 'inc', 'a.h'), '#define A 3\n');
    writeFileSync(join(src, 'inc', 'b.h'), 'int b(void);\n');
    writeFileSync(
      join(src, 'hello.c'),
      '#include <stdio.h>\n#include "a.h"\nint main(void) { printf("%d\\n", A); return 0; }\n',
    );
    writeFileSync(join(src, 'other.c'), '#include "b.h"\nint b(void) { return 2; }\n');
    writeFileSync(join(src, 'warn.c'), 'int w(void) { int unused; return 1; }\n');
    writeFileSync(join(src, 'broken.c'), 'int x(void) { return }\n');
    mkdirSync(join(root, 'run'), { mode: 0o700 });
    service = new CompileService({
      cacheDir,
      log,
      recorder,
      sharedCache: shared,
      fileHashes: hourAhead,
      statsFlushDelayMs: 10,
      // Garbage that announces a long frame is waited for this long, then closed.
      helloTimeoutMs: 500,
    });
    await service.start(socket);
    assert.equal(service.state, 'running');
  });
  after(async () => {
    await service.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('passes a link and -E through with exec', async () => {
    const pre = await cc(['-E', '-Iinc', 'hello.c', '-o', 'hello.i']);
    assert.equal(pre.how, 'exec');
    assert.equal(pre.code, 0);
    assert.equal(pre.messages[0]?.path, gcc.startsWith('/') ? pre.messages[0]?.path : gcc);
    assert.ok(readFileSync(join(src, 'hello.i'), 'utf8').includes('printf'));
    execFileSync(gcc, ['-c', 'other.c', '-Iinc', '-o', 'other-ref.o'], { cwd: src });
    const link = await cc(['-shared', 'other-ref.o', '-o', 'libother.so']);
    assert.equal(link.how, 'exec');
    assert.equal(link.code, 0);
    assert.ok(existsSync(join(src, 'libother.so')));
  });

  it('compiles on a miss, then serves a byte-identical object from the cache', async () => {
    execFileSync(gcc, ['-Iinc', '-c', 'hello.c', '-o', 'ref.o'], { cwd: src });
    const first = await cc(['-Iinc', '-c', 'hello.c', '-o', 'hello.o']);
    assert.deepEqual(
      first.messages.map((m) => m.type),
      ['run', 'exit'],
    );
    assert.equal(first.code, 0);
    // The compile's environment: no MUSTER_CC_*, and SUNPRO_DEPENDENCIES for the header list.
    const runEnv = first.messages[0]?.env ?? [];
    assert.ok(runEnv.some((e) => e.startsWith('SUNPRO_DEPENDENCIES=')));
    assert.deepEqual(readFileSync(join(src, 'hello.o')), readFileSync(join(src, 'ref.o')));
    // The result is kept after the shim was answered.
    await service.settled();

    rmSync(join(src, 'hello.o'));
    const second = await cc(['-Iinc', '-c', 'hello.c', '-o', 'hello.o'], { umask: 0o027 });
    assert.deepEqual(
      second.messages.map((m) => m.type),
      ['exit'],
    );
    assert.equal(second.code, 0);
    assert.deepEqual(readFileSync(join(src, 'hello.o')), readFileSync(join(src, 'ref.o')));
    assert.equal(statSync(join(src, 'hello.o')).mode & 0o777, 0o640);
  });

  it('a changed header is a miss, and --explain names it', async () => {
    await cc(['-Iinc', '-c', 'other.c', '-o', 'other.o']);
    await service.settled();
    const hit = await cc(['-Iinc', '-c', 'other.c', '-o', 'other.o']);
    assert.deepEqual(
      hit.messages.map((m) => m.type),
      ['exit'],
    );
    writeFileSync(join(src, 'inc', 'b.h'), 'int b(void); /* changed */\n');
    const miss = await cc(['-Iinc', '-c', 'other.c', '-o', 'other.o']);
    assert.deepEqual(
      miss.messages.map((m) => m.type),
      ['run', 'exit'],
    );
    // The explain record is written in the background: poll for it (bounded).
    let text = '';
    for (let i = 0; i < 500 && !text.includes('inc/b.h'); i++) {
      text = await explain(cacheDir, 'other.o', src);
      if (!text.includes('inc/b.h')) await new Promise((r) => setTimeout(r, 20));
    }
    assert.match(text, /MISS/);
    assert.match(text, /inc\/b\.h/);
    // And from the source's name too.
    assert.match(await explain(cacheDir, 'other.c', src), /inc\/b\.h/);
  });

  it('--explain names the argument that changed the direct key', async () => {
    await cc(['-Iinc', '-O0', '-c', 'other.c', '-o', 'args.o']);
    await cc(['-Iinc', '-O2', '-c', 'other.c', '-o', 'args.o']);
    let text = '';
    for (let i = 0; i < 500 && !text.includes('added -O2'); i++) {
      text = await explain(cacheDir, 'args.o', src);
      if (!text.includes('added -O2')) await new Promise((r) => setTimeout(r, 20));
    }
    assert.match(text, /the direct key changed/);
    assert.match(text, /args: added -O2; removed -O0/);
  });

  it('replays a warning from the cache and reproduces an -MD -MF depfile byte for byte', async () => {
    const args = [
      '-Wall',
      '-MD',
      '-MF',
      'deps/warn.d',
      '-MT',
      'warn.o',
      '-c',
      'warn.c',
      '-o',
      'warn.o',
    ];
    mkdirSync(join(src, 'deps'), { recursive: true });
    const ref = [
      '-Wall',
      '-MD',
      '-MF',
      'deps/ref.d',
      '-MT',
      'warn.o',
      '-c',
      'warn.c',
      '-o',
      'ref-warn.o',
    ];
    execFileSync(gcc, ref, { cwd: src, stdio: 'ignore' });
    const first = await cc(args);
    assert.equal(first.code, 0);
    assert.match(first.stderr.toString(), /unused variable/);
    const depfile = readFileSync(join(src, 'deps', 'warn.d'));
    assert.deepEqual(depfile, readFileSync(join(src, 'deps', 'ref.d')));
    rmSync(join(src, 'deps', 'warn.d'));
    rmSync(join(src, 'warn.o'));
    await service.settled();
    const second = await cc(args);
    assert.deepEqual(
      second.messages.map((m) => m.type),
      ['exit'],
    );
    assert.deepEqual(second.stderr, first.stderr);
    assert.deepEqual(readFileSync(join(src, 'deps', 'warn.d')), depfile);
    assert.deepEqual(readFileSync(join(src, 'warn.o')), readFileSync(join(src, 'ref-warn.o')));
  });

  it('caches -MMD compiles (system headers by fingerprint)', async () => {
    const args = ['-Iinc', '-MMD', '-MP', '-c', 'hello.c', '-o', 'mmd.o'];
    const first = await cc(args);
    assert.equal(first.code, 0);
    const d = readFileSync(join(src, 'mmd.d'));
    rmSync(join(src, 'mmd.d'));
    await service.settled();
    const second = await cc(args);
    assert.deepEqual(
      second.messages.map((m) => m.type),
      ['exit'],
    );
    assert.deepEqual(readFileSync(join(src, 'mmd.d')), d);
  });

  it('a compile error answers the same code and caches nothing', async () => {
    let plainCode = 0;
    try {
      execFileSync(gcc, ['-c', 'broken.c', '-o', 'broken-ref.o'], { cwd: src, stdio: 'ignore' });
    } catch (err) {
      plainCode = (err as { status: number }).status;
    }
    assert.notEqual(plainCode, 0);
    for (let i = 0; i < 2; i++) {
      const out = await cc(['-c', 'broken.c', '-o', 'broken.o']);
      assert.deepEqual(
        out.messages.map((m) => m.type),
        ['run', 'exit'],
      );
      assert.equal(out.code, plainCode);
      assert.match(out.stderr.toString(), /error/);
    }
  });

  it('answers 127 for a compiler that is not on PATH', async () => {
    const out = await fakeShim({ socket, argv: ['no-such-gcc-x', '-c', 'hello.c'], cwd: src, env });
    assert.equal(out.how, 'exit');
    assert.equal(out.code, 127);
    assert.equal(out.stderr.toString(), 'muster-cc: no-such-gcc-x: command not found\n');
  });

  it('takes the launcher form (muster-cc gcc …)', async () => {
    const out = await fakeShim({
      socket,
      argv: ['/opt/muster/dist/native/muster-cc', 'gcc', '-Iinc', '-c', 'hello.c', '-o', 'hello.o'],
      invokedAs: 'gcc',
      cwd: src,
      env,
    });
    assert.deepEqual(
      out.messages.map((m) => m.type),
      ['exit'],
    );
  });

  it('never takes the shim (or the masquerade dir) for the real compiler', async () => {
    // A masquerade dir first on PATH holding "gcc" → the shim, as muster build sets it up.
    const masq = join(root, 'masq');
    const shimDir = join(root, 'shim');
    mkdirSync(masq, { recursive: true });
    mkdirSync(shimDir, { recursive: true });
    const shim = join(shimDir, 'muster-cc');
    writeFileSync(shim, '#!/bin/sh\nexit 99\n', { mode: 0o755 });
    symlinkSync(shim, join(masq, 'gcc'));
    const path = `${masq}:${env.PATH}`;
    const viaEnv = await cc(['-c', 'other.c', '-Iinc', '-o', 'masq.o'], {
      env: { ...env, PATH: path, MUSTER_CC_MASQUERADE: masq, MUSTER_CC_SOCKET: socket },
    });
    assert.equal(viaEnv.code, 0);
    const run = viaEnv.messages.find((m) => m.type === 'run' || m.type === 'exit');
    assert.ok(run !== undefined);
    for (const m of viaEnv.messages) {
      if (m.path !== undefined) assert.ok(!m.path.startsWith(masq), m.path);
      for (const e of m.env ?? []) {
        assert.ok(!e.startsWith('MUSTER_CC_'), e);
        if (e.startsWith('PATH=')) assert.ok(!e.includes(masq), e);
      }
    }
    // Without the variable, by the shim's realpath (another service, told where the shim is).
    const other = new CompileService({
      cacheDir: join(root, 'cache-shim'),
      log,
      shimPath: shim,
      fileHashes: hourAhead,
    });
    const otherSocket = join(root, 'run2', 'cc.sock');
    await other.start(otherSocket);
    try {
      const out = await fakeShim({
        socket: otherSocket,
        argv: ['gcc', '-c', 'other.c', '-Iinc', '-o', 'masq2.o'],
        cwd: src,
        env: { ...env, PATH: path },
      });
      assert.equal(out.code, 0, out.stderr.toString());
      assert.ok(existsSync(join(src, 'masq2.o')));
    } finally {
      await other.stop();
    }
  });

  it('caches locally with a compiler that cannot be shipped (a wrapper script)', async () => {
    const wrapperDir = join(root, 'wrapper');
    mkdirSync(wrapperDir, { recursive: true });
    writeFileSync(join(wrapperDir, 'gcc'), `#!/bin/sh\nexec ${gcc} "$@"\n`, { mode: 0o755 });
    const wrapped = { ...env, PATH: `${wrapperDir}:${env.PATH}` };
    const args = ['-Iinc', '-c', 'other.c', '-o', 'wrapped.o'];
    const storedBefore = shared.stored.length;
    const first = await cc(args, { env: wrapped });
    assert.deepEqual(
      first.messages.map((m) => m.type),
      ['run', 'exit'],
    );
    assert.equal(first.messages[0]?.path, join(wrapperDir, 'gcc'));
    await service.settled();
    const second = await cc(args, { env: wrapped });
    assert.deepEqual(
      second.messages.map((m) => m.type),
      ['exit'],
    );
    // Its id is local (its bytes and --version): nothing of it goes to the shared cache.
    assert.equal(shared.stored.length, storedBefore);
  });

  it('survives garbage: each bad connection is closed, the next compile is served', async () => {
    const huge = Buffer.alloc(4);
    huge.writeUInt32BE(0xffffffff);
    const badJson = Buffer.concat([Buffer.from([0, 0, 0, 4, 1]), Buffer.from('{{{')]);
    const wrongSchema = encodeJsonFrame({ type: 'hello', v: 1, argv: [] });
    const ranFirst = encodeJsonFrame({
      type: 'ran',
      token: 'x',
      exitCode: 0,
      signal: null,
      stderr: '',
      usec: 1,
    });
    const binary = Buffer.from([0, 0, 0, 5, 2, 0, 0, 0, 0]);
    for (const bytes of [huge, badJson, wrongSchema, ranFirst, binary]) {
      assert.equal(await sendRaw(socket, bytes), 'closed');
    }
    const random = Buffer.alloc(4096);
    for (let i = 0; i < random.length; i++) random[i] = (i * 7919) % 256;
    assert.equal(await sendRaw(socket, random), 'closed');
    assert.equal(service.state, 'running');
    const out = await cc(['-Iinc', '-c', 'hello.c', '-o', 'hello.o']);
    assert.equal(out.code, 0);
  });

  it('records every compile job and stores misses in the shared cache', async () => {
    assert.ok(recorder.records.length >= 5);
    assert.ok(recorder.records.every((r) => r.label.startsWith('gcc ')));
    assert.ok(recorder.records.some((r) => r.placement === 'cache' && r.cache === 'hit'));
    assert.ok(recorder.records.some((r) => r.placement === 'local' && r.cache === 'miss'));
    assert.ok(recorder.records.some((r) => r.exitCode === 1));
    await until(() => shared.stored.length >= 3, 'shared stores');
    const stored = shared.stored[0]!;
    assert.equal(stored.outputs[0]?.name, 'object');
    assert.ok(stored.manifest !== undefined && stored.manifest.includes.length > 0);
    assert.ok(shared.lookups.length > 0);
  });

  it('counts what it did in stats.json', async () => {
    await service.stats.flush();
    const stats = await readStats(cacheDir);
    assert.ok(stats.passthrough >= 2, `passthrough ${stats.passthrough}`);
    assert.ok(stats.compiles >= 10, `compiles ${stats.compiles}`);
    assert.ok(stats.cacheHits >= 5, `hits ${stats.cacheHits}`);
    assert.ok(stats.cacheMisses >= 4, `misses ${stats.cacheMisses}`);
    assert.ok(stats.errors >= 2);
    assert.equal(stats.compiles, stats.cacheHits + stats.local);
    assert.equal(stats.fallbacks, 0);
  });
});

describe('compile service: fallbacks, too-new files, lifecycle', () => {
  const root = mkdtempSync(join(tmpdir(), 'muster-cc-service2-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  it('a failing shared cache is a counted fallback; the compile still succeeds', async () => {
    requireGcc();
    const src = join(root, 'a');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'x.c'), 'int x(void) { return 1; }\n');
    const cacheDir = join(root, 'cache-a');
    const socket = join(root, 'sock-a', 'cc.sock');
    const shared = new FakeSharedCache(true);
    const service = new CompileService({
      cacheDir,
      log,
      sharedCache: shared,
      fileHashes: hourAhead,
    });
    await service.start(socket);
    try {
      const out = await fakeShim({ socket, argv: ['gcc', '-c', 'x.c'], cwd: src });
      assert.equal(out.code, 0);
      assert.ok(existsSync(join(src, 'x.o')));
      assert.equal(shared.lookups.length, 1);
    } finally {
      await service.stop();
    }
    assert.equal(service.state, 'stopped');
    assert.ok(!existsSync(socket), 'the socket file is removed');
    const stats = await readStats(cacheDir);
    assert.equal(stats.fallbacks, 1);
    assert.deepEqual(stats.fallbackReasons, { 'no-coordinator': 1 });
  });

  it('a miss stored in the shared cache is a hit for a service with an empty local tier', async () => {
    const src = join(root, 'shared-src');
    mkdirSync(join(src, 'inc'), { recursive: true });
    writeFileSync(join(src, 'inc', 'z.h'), '#define Z 7\n');
    writeFileSync(join(src, 'z.c'), '#include "z.h"\nint z(void) { int u; return Z; }\n');
    const shared = new InMemorySharedCache();
    const args = ['gcc', '-Wall', '-Iinc', '-MD', '-c', 'z.c', '-o', 'z.o'];
    const first = new CompileService({
      cacheDir: join(root, 'cache-s1'),
      log,
      sharedCache: shared,
      fileHashes: hourAhead,
    });
    await first.start(join(root, 'sock-s1', 'cc.sock'));
    let miss;
    try {
      miss = await fakeShim({ socket: join(root, 'sock-s1', 'cc.sock'), argv: args, cwd: src });
      assert.equal(miss.code, 0);
    } finally {
      await first.stop(); // waits for the background upload
    }
    assert.equal(shared.entries.size, 1);
    const object = readFileSync(join(src, 'z.o'));
    const depfile = readFileSync(join(src, 'z.d'));
    rmSync(join(src, 'z.o'));
    rmSync(join(src, 'z.d'));

    const second = new CompileService({
      cacheDir: join(root, 'cache-s2'),
      log,
      sharedCache: shared,
      fileHashes: hourAhead,
    });
    await second.start(join(root, 'sock-s2', 'cc.sock'));
    try {
      const hit = await fakeShim({
        socket: join(root, 'sock-s2', 'cc.sock'),
        argv: args,
        cwd: src,
      });
      assert.deepEqual(
        hit.messages.map((m) => m.type),
        ['exit'],
      );
      assert.deepEqual(hit.stderr, miss.stderr, 'the warning is replayed');
      assert.deepEqual(readFileSync(join(src, 'z.o')), object);
      assert.deepEqual(readFileSync(join(src, 'z.d')), depfile);
      // Kept in the second service's local tier: the next hit needs no shared cache.
      const fetched = shared.fetched;
      const again = await fakeShim({
        socket: join(root, 'sock-s2', 'cc.sock'),
        argv: args,
        cwd: src,
      });
      assert.equal(again.how, 'exit');
      assert.equal(shared.fetched, fetched);
    } finally {
      await second.stop();
    }
  });

  /**
   * A service whose kept results wait until the test says: the first stat of `gated` (a header
   * only keeping the result hashes) holds until `release()`. Its clock is `shiftNs` ahead.
   */
  function gatedService(name: string, gated: string, clock: { shiftNs: bigint }) {
    let release: () => void = () => undefined;
    const released = new Promise<void>((r) => (release = r));
    let held = false;
    const service = new CompileService({
      cacheDir: join(root, `cache-${name}`),
      log,
      fileHashes: {
        ...hourAhead,
        stat: async (p: string) => {
          if (p === gated && !held) {
            held = true;
            await released;
          }
          return statSync(p, { bigint: true });
        },
        now: () => BigInt(Date.now()) * 1_000_000n + clock.shiftNs,
      },
    });
    return { service, release, socket: join(root, `sock-${name}`, 'cc.sock') };
  }

  it('keeps the compile’s bytes when depcomp moves the depfile and the object is rewritten after the answer', async () => {
    const gcc = requireGcc();
    const src = join(root, 'depcomp');
    mkdirSync(join(src, '.deps'), { recursive: true });
    writeFileSync(join(src, 'dep.h'), '#define D 5\n');
    writeFileSync(join(src, 'dep.c'), '#include "dep.h"\nint d(void) { return D; }\n');
    const args = [
      '-MT',
      'dep.o',
      '-MD',
      '-MP',
      '-MF',
      '.deps/dep.Tpo',
      '-c',
      'dep.c',
      '-o',
      'dep.o',
    ];
    execFileSync(gcc, [...args.slice(0, 5), '.deps/ref.Tpo', '-c', 'dep.c', '-o', 'ref.o'], {
      cwd: src,
    });
    const { service, release, socket } = gatedService('depcomp', join(src, 'dep.h'), {
      shiftNs: 3_600_000_000_000n,
    });
    await service.start(socket);
    try {
      const first = await fakeShim({ socket, argv: ['gcc', ...args], cwd: src });
      assert.deepEqual(
        first.messages.map((m) => m.type),
        ['run', 'exit'],
      );
      const object = readFileSync(join(src, 'dep.o'));
      const depfile = readFileSync(join(src, '.deps', 'dep.Tpo'));
      assert.deepEqual(object, readFileSync(join(src, 'ref.o')));
      // What make and automake do next, while the result still waits to be kept:
      // `mv -f .deps/dep.Tpo .deps/dep.Po`, and a later step rewrites the object.
      renameSync(join(src, '.deps', 'dep.Tpo'), join(src, '.deps', 'dep.Po'));
      writeFileSync(join(src, 'dep.o'), 'not an object');
      release();
      await service.settled();
      rmSync(join(src, 'dep.o'));
      const second = await fakeShim({ socket, argv: ['gcc', ...args], cwd: src });
      assert.deepEqual(
        second.messages.map((m) => m.type),
        ['exit'],
      );
      assert.deepEqual(readFileSync(join(src, 'dep.o')), object);
      assert.deepEqual(readFileSync(join(src, '.deps', 'dep.Tpo')), depfile);
    } finally {
      await service.stop();
    }
  });

  it('a header rewritten after the compile started is not kept, however late it is hashed', async () => {
    requireGcc();
    const src = join(root, 'during');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'late.h'), '#define L 1\n');
    writeFileSync(join(src, 'late.c'), '#include "late.h"\nint l(void) { return L; }\n');
    // The files' clock an hour ahead of the real one: the files written above are old to it.
    const clock = { shiftNs: 3_600_000_000_000n };
    const { service, release, socket } = gatedService('during', join(src, 'late.h'), clock);
    const cacheDir = join(root, 'cache-during');
    await service.start(socket);
    try {
      const first = await fakeShim({ socket, argv: ['gcc', '-c', 'late.c'], cwd: src });
      assert.deepEqual(
        first.messages.map((m) => m.type),
        ['run', 'exit'],
      );
      // Rewritten after the compile's start (by the files' clock, now), and hashed an hour later:
      // "within 2 s of now" alone would keep the object with the new content's hash.
      writeFileSync(join(src, 'late.h'), '#define L 2\n');
      const rewritten = new Date(Date.now() + 3_600_000);
      utimesSync(join(src, 'late.h'), rewritten, rewritten);
      clock.shiftNs = 7_200_000_000_000n;
      release();
      await service.settled();
      let text = '';
      for (let i = 0; i < 500 && !text.includes('too-new'); i++) {
        text = await explain(cacheDir, 'late.o', src);
        if (!text.includes('too-new')) await new Promise((r) => setTimeout(r, 20));
      }
      assert.match(text, /too-new: late\.h/);
      const again = await fakeShim({ socket, argv: ['gcc', '-c', 'late.c'], cwd: src });
      assert.deepEqual(
        again.messages.map((m) => m.type),
        ['run', 'exit'],
        'nothing was kept: compiled again',
      );
      await service.settled();
      // Kept this time (the header is old to this compile's start), so a hit follows.
      const hit = await fakeShim({ socket, argv: ['gcc', '-c', 'late.c'], cwd: src });
      assert.deepEqual(
        hit.messages.map((m) => m.type),
        ['exit'],
      );
    } finally {
      await service.stop();
    }
    const stats = await readStats(cacheDir);
    assert.equal(stats.uncacheable, 1);
    assert.equal(stats.cacheHits, 1);
  });

  it('files changed in the last 2 s are not cached (uncacheable)', async () => {
    const src = join(root, 'b');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'y.c'), 'int y(void) { return 1; }\n');
    const cacheDir = join(root, 'cache-b');
    const socket = join(root, 'sock-b', 'cc.sock');
    // A clock an hour behind: every file looks modified "just now" (or in the future).
    const service = new CompileService({
      cacheDir,
      log,
      fileHashes: { ...hourAhead, now: () => (BigInt(Date.now()) - 3_600_000n) * 1_000_000n },
    });
    await service.start(socket);
    try {
      for (let i = 0; i < 2; i++) {
        const out = await fakeShim({ socket, argv: ['gcc', '-c', 'y.c'], cwd: src });
        assert.deepEqual(
          out.messages.map((m) => m.type),
          ['run', 'exit'],
        );
      }
    } finally {
      await service.stop();
    }
    const stats = await readStats(cacheDir);
    assert.equal(stats.uncacheable, 2);
    assert.equal(stats.cacheHits, 0);
  });

  it('folds the shim fallback log at start, refuses a shared socket dir, stops idempotently', async () => {
    const dir = join(root, 'sock-c');
    mkdirSync(dir, { mode: 0o700 });
    writeFileSync(join(dir, 'cc-fallbacks.log'), '1765000000 no-socket\n1765000001 not-utf8\n');
    const cacheDir = join(root, 'cache-c');
    const service = new CompileService({ cacheDir, log });
    await service.start(join(dir, 'cc.sock'));
    assert.ok(!existsSync(join(dir, 'cc-fallbacks.log')));
    await Promise.all([service.stop(), service.stop()]);
    await service.stop();
    const stats = await readStats(cacheDir);
    assert.deepEqual(stats.fallbackReasons, { 'no-socket': 1, 'not-utf8': 1 });
    await assert.rejects(service.start(join(dir, 'cc.sock')));

    const open = join(root, 'open');
    mkdirSync(open, { mode: 0o755 });
    const refused = new CompileService({ cacheDir, log });
    await assert.rejects(refused.start(join(open, 'cc.sock')), /open to other users/);
    assert.equal(refused.state, 'stopped');
  });

  it('reports idleness for --idle-exit once no shim has been connected for the duration', async () => {
    const src = join(root, 'idle');
    mkdirSync(src, { recursive: true });
    const socket = join(root, 'sock-idle', 'cc.sock');
    const service = new CompileService({ cacheDir: join(root, 'cache-idle'), log });
    await service.start(socket);
    let idleAt = 0;
    const connectedAt = Date.now();
    const held = connect(socket);
    await new Promise((r) => held.once('connect', r));
    const stopWatching = watchIdle(service, 100, () => {
      idleAt = Date.now();
    });
    try {
      await until(() => service.activeConnections === 1, 'the connection');
      assert.equal(service.idleMs(), 0, 'not idle while a shim is connected');
      const closedAt = Date.now();
      held.destroy();
      await until(() => idleAt > 0, 'the idle callback');
      assert.ok(idleAt - closedAt >= 100 && idleAt >= connectedAt);
    } finally {
      stopWatching();
      await service.stop();
    }
  });

  it('closes a connection that would push the buffered bytes over the budget', async () => {
    const socket = join(root, 'sock-budget', 'cc.sock');
    const service = new CompileService({
      cacheDir: join(root, 'cache-budget'),
      log,
      maxBufferedBytes: 64 * 1024,
    });
    await service.start(socket);
    try {
      const header = Buffer.alloc(5);
      header.writeUInt32BE(1024 * 1024);
      header.writeUInt8(1, 4);
      const bytes = Buffer.concat([header, Buffer.alloc(200 * 1024, 0x20)]);
      assert.equal(await sendRaw(socket, bytes), 'closed');
      assert.equal(service.state, 'running');
    } finally {
      await service.stop();
    }
  });

  it('a second service on a live socket is refused; a stale socket file is replaced', async () => {
    const dir = join(root, 'sock-d');
    const path = join(dir, 'cc.sock');
    const one = new CompileService({ cacheDir: join(root, 'cache-d'), log });
    await one.start(path);
    const two = new CompileService({ cacheDir: join(root, 'cache-d'), log });
    await assert.rejects(two.start(path), /already answers/);
    await one.stop();
    // A socket file nobody listens on (a crashed service): made by a server closed without unlink.
    const { createServer } = await import('node:net');
    const stale = createServer();
    await new Promise<void>((r) => stale.listen(path, r));
    const staleFile = statSync(path);
    assert.ok(staleFile.isSocket());
    // Closing a Node server unlinks its socket; keep a copy as a hard link to leave one behind.
    const { linkSync } = await import('node:fs');
    linkSync(path, `${path}.old`);
    await new Promise<void>((r) => stale.close(() => r()));
    linkSync(`${path}.old`, path);
    rmSync(`${path}.old`);
    const three = new CompileService({ cacheDir: join(root, 'cache-d'), log });
    await three.start(path);
    assert.equal(three.state, 'running');
    await three.stop();
  });
});
