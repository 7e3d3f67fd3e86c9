/**
 * How `muster build` starts its command without waiting for the coordinator: the compile service
 * holds each compile until its ports (the session's) are known, then answers it with them — or,
 * when the session could not be opened, as a build without a coordinator (a counted fallback).
 * And which compilers it identifies while the command starts.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { prewarmedCompilers } from '../../src/cli/cc/launch-env.js';
import { CompileService, type CoordinatorPorts } from '../../src/cli/cc/service.js';
import { readStats } from '../../src/cli/cc/stats.js';
import { FakeRecorder, hourAhead, InMemorySharedCache } from '../helpers/cc-fakes.js';
import { fakeShim } from '../helpers/fake-shim.js';
import { requireGcc } from '../helpers/gcc.js';

const log = pino({ level: 'silent' });

describe('muster build: the compilers identified while the command starts', () => {
  it('takes the compiler $CC and $CXX name, through the launcher forms, else cc', () => {
    assert.deepEqual(prewarmedCompilers({}), ['cc']);
    assert.deepEqual(prewarmedCompilers({ CC: 'gcc -std=gnu99', CXX: 'g++' }), ['gcc', 'g++']);
    assert.deepEqual(prewarmedCompilers({ CC: 'muster cc clang -O2' }), ['clang']);
    assert.deepEqual(prewarmedCompilers({ CC: '/opt/muster/bin/muster-cc gcc' }), ['gcc']);
    assert.deepEqual(prewarmedCompilers({ CC: 'gcc', CXX: 'gcc' }), ['gcc']);
    // Nothing a compiler could be: make's default.
    assert.deepEqual(prewarmedCompilers({ CC: '  ', CXX: 'muster cc' }), ['cc']);
    assert.deepEqual(prewarmedCompilers({ CC: '-O2' }), ['cc']);
  });
});

describe('muster build: a compile service whose ports arrive later', () => {
  const root = mkdtempSync(join(tmpdir(), 'muster-cc-build-start-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  function project(name: string): string {
    const src = join(root, name);
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'x.c'), 'int x(void) { return 1; }\n');
    return src;
  }

  it('holds a compile until the session is open, then uses its shared cache and recorder', async () => {
    requireGcc();
    const src = project('later');
    const shared = new InMemorySharedCache();
    const recorder = new FakeRecorder();
    let open: (ports: CoordinatorPorts) => void = () => undefined;
    const coordinator = new Promise<CoordinatorPorts>((resolve) => (open = resolve));
    const socket = join(root, 'sock-later', 'cc.sock');
    const service = new CompileService({
      cacheDir: join(root, 'cache-later'),
      log,
      coordinator,
      prewarm: ['cc'],
      fileHashes: hourAhead,
    });
    await service.start(socket);
    try {
      let answered = false;
      const compile = fakeShim({ socket, argv: ['gcc', '-c', 'x.c'], cwd: src }).then((out) => {
        answered = true;
        return out;
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(answered, false, 'the compile waits for the session');
      open({ sharedCache: shared, recorder });
      const out = await compile;
      assert.equal(out.code, 0);
      assert.ok(existsSync(join(src, 'x.o')));
    } finally {
      await service.stop();
    }
    assert.equal(shared.entries.size, 1, 'the result went to the shared cache');
    assert.equal(recorder.records.length, 1);
    const stats = await readStats(join(root, 'cache-later'));
    assert.equal(stats.fallbacks, 0);
  });

  it('a session that could not be opened: compiles run here, each a counted fallback', async () => {
    requireGcc();
    const src = project('never');
    const socket = join(root, 'sock-never', 'cc.sock');
    const service = new CompileService({
      cacheDir: join(root, 'cache-never'),
      log,
      coordinator: Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:1')),
      fileHashes: hourAhead,
    });
    await service.start(socket);
    try {
      const out = await fakeShim({ socket, argv: ['gcc', '-c', 'x.c'], cwd: src });
      assert.equal(out.code, 0);
      assert.ok(existsSync(join(src, 'x.o')));
    } finally {
      await service.stop();
    }
    const stats = await readStats(join(root, 'cache-never'));
    assert.deepEqual(stats.fallbackReasons, { 'no-coordinator': 1 });
  });
});
