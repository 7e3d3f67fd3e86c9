/**
 * The agent's half of a remote compile (src/extensions/cc/): this machine's real gcc made into a
 * toolchain (discoverToolchain, copied as the bundle lays it out), a directives-only text made
 * by the client's pass (`gcc -E -fdirectives-only` + stripPrelude), compiled by cc/compile in a
 * fresh work dir → the very object bytes of a plain local `gcc -c`, with and without -g. And
 * what it refuses: compile errors fail with the diagnostics, a toolchain this agent's glibc is
 * too old for, a toolchain that is not there, paths that lead out, a driver other than its
 * description's, arguments a plain compile does not take (test/unit/cc-remote-args.test.ts has
 * every shape).
 */
import assert from 'node:assert/strict';
import {
  chmod,
  copyFile,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  realpath,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createHash } from 'node:crypto';
import { cp } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { stripPrelude } from '../../src/cli/cc/directives.js';
import { discoverToolchain, type Toolchain } from '../../src/cli/cc/toolchain.js';
import { compileOperation, type CompileResult } from '../../src/extensions/cc/compile.js';
import { glibcSatisfies } from '../../src/extensions/cc/toolchains.js';
import { loadExtension, type OperationContext } from '../../src/host/extensions.js';
import { TaskRun } from '../../src/host/task-run.js';
import type { HostToAgent } from '../../src/protocol/host-messages.js';
import { runGcc } from '../helpers/gcc.js';

let scratch: string;
let toolchains: string;
let client: string;
let gcc: Toolchain;
let count = 0;

const HEADER = '#define SCALE 3\nstatic inline int twice(int x) { return 2 * x; }\n';
const SOURCE = [
  '#include <stdio.h>',
  '#include "lib.h"',
  'static int table[16];',
  'int scale(int x) {',
  '  for (int i = 0; i < 16; i++) table[i] = twice(i) * SCALE;',
  '  printf("%s %d\\n", __FILE__, __LINE__);',
  '  return table[x & 15];',
  '}',
  '',
].join('\n');

async function materialise(toolchain: Toolchain, root: string): Promise<void> {
  for (const file of toolchain.files) {
    const to = join(root, file.path);
    await mkdir(dirname(to), { recursive: true });
    await copyFile(file.source, to);
    await chmod(to, file.mode);
  }
}

interface Fake {
  ctx: OperationContext;
  stderr: () => string;
  tracked: number[];
  untracked: number[];
}

async function fakeContext(): Promise<Fake> {
  const workDir = join(scratch, 'work', String(++count));
  await mkdir(workDir, { recursive: true });
  const err: Buffer[] = [];
  const tracked: number[] = [];
  const untracked: number[] = [];
  const ctx: OperationContext = {
    taskId: `t${count}`,
    workDir,
    env: { PATH: process.env.PATH ?? '' },
    signal: new AbortController().signal,
    stdout: () => undefined,
    stderr: (d) => err.push(Buffer.from(d)),
    log: () => undefined,
    trackProcess: (pid) => tracked.push(pid),
    untrackProcess: (pid) => untracked.push(pid),
  };
  return { ctx, stderr: () => Buffer.concat(err).toString(), tracked, untracked };
}

/** The client's pass: `gcc <cpp args> -E -fdirectives-only src`, prelude stripped. */
async function directivesText(cwd: string, source: string, extra: string[] = []): Promise<Buffer> {
  const out = join(scratch, `pass-${++count}.i`);
  runGcc([...extra, '-E', '-fdirectives-only', source, '-o', out], cwd);
  const stripped = stripPrelude(await readFile(out));
  assert.ok(stripped !== null, 'gcc wrote a directives-only text');
  return stripped.text;
}

async function place(workDir: string, rel: string, data: Buffer | string): Promise<void> {
  await mkdir(dirname(join(workDir, rel)), { recursive: true });
  await writeFile(join(workDir, rel), data);
}

function compile(options: Partial<Parameters<typeof compileOperation>[0]> = {}) {
  return compileOperation({ toolchainsRoot: toolchains, ...options });
}

function hasCode(code: string, message?: RegExp) {
  return (err: unknown): boolean => {
    assert.equal((err as { code?: unknown }).code, code, String(err));
    if (message) assert.match((err as Error).message, message);
    return true;
  };
}

describe('cc/compile', () => {
  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'muster-cc-compile-'));
    toolchains = join(scratch, 'bundle', 'toolchains');
    client = join(scratch, 'client', 'project');
    gcc = await discoverToolchain('gcc');
    await materialise(gcc, join(toolchains, gcc.id));
    await writeFile(
      join(toolchains, `${gcc.id}.json`),
      JSON.stringify({ glibc: gcc.glibc, driver: gcc.driver }),
    );
    await place(client, 'src/lib.h', HEADER);
    await place(client, 'src/scale.c', SOURCE);
    await place(client, 'src/broken.c', 'int broken(void) { return undeclared_name + ; }\n');
  });
  after(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  for (const flags of [['-O2'], ['-O2', '-g'], ['-O0', '-g', '-Wall']]) {
    it(`makes the object of a local gcc ${flags.join(' ')} -c, byte for byte`, async () => {
      await mkdir(join(client, 'obj'), { recursive: true });
      runGcc([...flags, '-c', 'src/scale.c', '-o', 'obj/local.o'], client);
      const local = await readFile(join(client, 'obj', 'local.o'));

      const fake = await fakeContext();
      await place(fake.ctx.workDir, 'src/scale.c', await directivesText(client, 'src/scale.c'));
      const result = await compile()(
        {
          toolchain: gcc.id,
          driver: gcc.driver,
          args: [...flags, '-c', 'src/scale.c', '-o', 'obj/scale.o'],
          debugPrefixMaps: [{ dir: '', to: client }],
          env: { LC_ALL: 'C' },
          outputs: [{ name: 'object', path: 'obj/scale.o' }],
        },
        fake.ctx,
      );
      assert.equal(result.exitCode, 0, result.stderr);
      assert.equal(result.stderr, '');
      assert.equal(result.stderrBytes, 0);
      const remote = await readFile(join(fake.ctx.workDir, 'obj', 'scale.o'));
      assert.deepEqual(result.outputs, [
        { name: 'object', path: 'obj/scale.o', size: remote.length },
      ]);
      assert.ok(local.length > 0);
      assert.ok(remote.equals(local), 'the remote object differs from the local one');
      // One process group, announced and released; the temp dir is gone.
      assert.equal(fake.tracked.length, 1);
      assert.deepEqual(fake.untracked, fake.tracked);
      assert.deepEqual(
        (await readdir(fake.ctx.workDir)).filter((n) => n.startsWith('.cc-tmp-')),
        [],
      );
    });
  }

  it('compiles from a subdirectory, and a source named by its absolute path, exactly', async () => {
    // make in build/: gcc -g -c ../src/scale.c -o scale.o, and CMake's absolute source path.
    const build = join(client, 'build');
    await mkdir(build, { recursive: true });
    const absolute = join(client, 'src', 'scale.c');
    for (const [source, placed, arg, maps] of [
      ['../src/scale.c', 'src/scale.c', '../src/scale.c', [{ dir: 'build', to: build }]],
      [
        absolute,
        `root${absolute}`,
        { workPath: `root${absolute}` },
        // gcc tries the last map first: the root's must win over the cwd's (its parent).
        [
          { dir: '', to: build },
          { dir: 'root', to: '' },
        ],
      ],
    ] as const) {
      runGcc(['-O2', '-g', '-c', source, '-o', 'local.o'], build);
      const local = await readFile(join(build, 'local.o'));
      const fake = await fakeContext();
      await place(fake.ctx.workDir, placed, await directivesText(build, source));
      const cwd = source === absolute ? '' : 'build';
      const result = await compile()(
        {
          toolchain: gcc.id,
          driver: gcc.driver,
          args: ['-O2', '-g', '-c', arg, '-o', 'scale.o'],
          cwd,
          debugPrefixMaps: maps,
          outputs: [{ name: 'object', path: cwd === '' ? 'scale.o' : `${cwd}/scale.o` }],
        },
        fake.ctx,
      );
      assert.equal(result.exitCode, 0, result.stderr);
      const remote = await readFile(join(fake.ctx.workDir, cwd, 'scale.o'));
      assert.ok(remote.equals(local), `${source}: the remote object differs`);
    }
  });

  it('fails a compile error with the exit code and the diagnostics, in the log and the value', async () => {
    const fake = await fakeContext();
    await place(fake.ctx.workDir, 'src/broken.c', await directivesText(client, 'src/broken.c'));
    const result: CompileResult = await compile()(
      {
        toolchain: gcc.id,
        driver: gcc.driver,
        args: ['-O2', '-c', 'src/broken.c', '-o', 'broken.o'],
        outputs: [{ name: 'object', path: 'broken.o' }],
      },
      fake.ctx,
    );
    assert.equal(result.exitCode, 1);
    assert.equal(result.signal, null);
    assert.match(result.stderr, /broken\.c:1:\d+: error: .*undeclared_name/);
    assert.equal(result.stderrBytes, Buffer.byteLength(result.stderr));
    assert.equal(fake.stderr(), result.stderr);
    assert.deepEqual(result.outputs, []);
  });

  it("reads no header of the agent's: a text that still includes one fails (-nostdinc)", async () => {
    const fake = await fakeContext();
    await place(fake.ctx.workDir, 'x.c', '#include <stdio.h>\nint x;\n');
    const result = await compile()(
      {
        toolchain: gcc.id,
        driver: gcc.driver,
        args: ['-c', 'x.c', '-o', 'x.o'],
        outputs: [{ name: 'object', path: 'x.o' }],
      },
      fake.ctx,
    );
    assert.notEqual(result.exitCode, 0);
    assert.match(result.stderr, /stdio\.h/);
  });

  it('refuses a toolchain this agent cannot run: TOOLCHAIN_INCOMPATIBLE', async () => {
    const input = {
      toolchain: gcc.id,
      driver: gcc.driver,
      args: ['-c', 'x.c', '-o', 'x.o'],
      outputs: [{ name: 'object', path: 'x.o' }],
    };
    const [major, minor] = gcc.glibc.split('.').map(Number) as [number, number];
    for (const agentGlibc of [`${major}.${minor - 1}`, '1.99', undefined]) {
      const fake = await fakeContext();
      await assert.rejects(
        compile({ glibc: () => agentGlibc })(input, fake.ctx),
        hasCode('TOOLCHAIN_INCOMPATIBLE', new RegExp(`needs glibc ${gcc.glibc}`)),
      );
      assert.deepEqual(fake.tracked, [], 'nothing was started');
    }
    // A toolchain that needs a glibc newer than this machine's, with the real check.
    const future = 'f'.repeat(64);
    await mkdir(join(toolchains, future, 'bin'), { recursive: true });
    await writeFile(
      join(toolchains, `${future}.json`),
      JSON.stringify({ glibc: '2.999', driver: gcc.driver }),
    );
    await assert.rejects(
      compile()({ ...input, toolchain: future }, (await fakeContext()).ctx),
      hasCode('TOOLCHAIN_INCOMPATIBLE', /needs glibc 2\.999; this agent has 2\.\d+/),
    );
    assert.ok(glibcSatisfies('2.36', '2.36'));
    assert.ok(glibcSatisfies('2.36', '2.4'));
    assert.ok(glibcSatisfies('3.0', '2.40'));
    assert.ok(!glibcSatisfies('2.35', '2.36'));
    assert.ok(!glibcSatisfies('2.x', '2.1'));
  });

  it('refuses a toolchain that is not on the agent: TOOLCHAIN_NOT_FOUND', async () => {
    const input = {
      driver: 'bin/gcc',
      args: ['-c', 'x.c', '-o', 'x.o'],
      outputs: [{ name: 'object', path: 'x.o' }],
    };
    const absent = 'a'.repeat(64);
    await assert.rejects(
      compile()({ ...input, toolchain: absent }, (await fakeContext()).ctx),
      hasCode('TOOLCHAIN_NOT_FOUND', /not on this agent/),
    );
    // Files but no description (or one without glibc): not a toolchain this bundle shipped.
    const bare = 'b'.repeat(64);
    await mkdir(join(toolchains, bare, 'bin'), { recursive: true });
    await assert.rejects(
      compile()({ ...input, toolchain: bare }, (await fakeContext()).ctx),
      hasCode('TOOLCHAIN_NOT_FOUND'),
    );
    await writeFile(join(toolchains, `${bare}.json`), '{"driver":"bin/gcc"}');
    await assert.rejects(
      compile()({ ...input, toolchain: bare }, (await fakeContext()).ctx),
      hasCode('TOOLCHAIN_NOT_FOUND', /no glibc/),
    );
    // A toolchains root that does not exist at all (no toolchain was ever shipped).
    await assert.rejects(
      compile({ toolchainsRoot: join(scratch, 'nowhere') })(
        { ...input, toolchain: gcc.id },
        (await fakeContext()).ctx,
      ),
      hasCode('TOOLCHAIN_NOT_FOUND'),
    );
  });

  it('refuses paths that lead out of the toolchain or the work dir, and bad input', async () => {
    // Toolchains whose bin/ has a symlink to the system's compiler, a link up to the toolchains
    // root, a data file — each described with one of them as its driver (a driver other than
    // the description's is refused before anything is looked at).
    const slyTo = async (id: string, driver: string): Promise<string> => {
      await mkdir(join(toolchains, id, 'bin'), { recursive: true });
      await writeFile(join(toolchains, `${id}.json`), JSON.stringify({ glibc: '2.0', driver }));
      await symlink('/usr/bin/gcc', join(toolchains, id, 'bin', 'gcc'));
      await symlink('../..', join(toolchains, id, 'bin', 'up'));
      await writeFile(join(toolchains, id, 'bin', 'data'), 'not a program', { mode: 0o644 });
      return id;
    };
    const sly = await slyTo('c'.repeat(64), 'bin/gcc');
    const upward = await slyTo('3'.repeat(64), `bin/up/${gcc.id}/${gcc.driver}`);
    const data = await slyTo('4'.repeat(64), 'bin/data');

    const good = {
      toolchain: gcc.id,
      driver: gcc.driver,
      args: ['-c', 'x.c', '-o', 'x.o'],
      outputs: [{ name: 'object', path: 'x.o' }],
    };
    const outside = await mkdtemp(join(scratch, 'outside-'));
    const cases: [string, Record<string, unknown>, string, RegExp?][] = [
      ['a driver with ..', { driver: '../../bin/gcc' }, 'INVALID_PATH', /"\.\." segment/],
      ['an absolute driver', { driver: '/usr/bin/gcc' }, 'INVALID_PATH', /absolute/],
      ['a driver symlink out', { toolchain: sly, driver: 'bin/gcc' }, 'INVALID_PATH', /outside/],
      [
        'a driver via a dir link into another toolchain',
        { toolchain: upward, driver: `bin/up/${gcc.id}/${gcc.driver}` },
        'INVALID_PATH',
        /outside/,
      ],
      ['a driver that is data', { toolchain: data, driver: 'bin/data' }, 'INVALID_PATH', /program/],
      [
        'a driver other than the description names',
        { driver: 'bin/nope' },
        'INVALID_INPUT',
        /"driver" "bin\/nope" is not toolchain [0-9a-f]{64}'s driver/,
      ],
      [
        'another program of the toolchain (its cc1, an as)',
        { toolchain: upward, driver: 'bin/gcc' },
        'INVALID_INPUT',
        /is not toolchain/,
      ],
      ['a cwd with ..', { cwd: '../x' }, 'INVALID_PATH'],
      [
        'a cwd through a link out',
        { cwd: 'out/sub', outputs: [{ name: 'object', path: 'out/sub/x.o' }] },
        'INVALID_PATH',
        /symlink/,
      ],
      ['an output with ..', { outputs: [{ name: 'object', path: '../x.o' }] }, 'INVALID_PATH'],
      [
        'an output through a link',
        { args: ['-c', 'x.c', '-o', 'out/x.o'], outputs: [{ name: 'object', path: 'out/x.o' }] },
        'INVALID_PATH',
      ],
      [
        '-o other than the declared object',
        { args: ['-c', 'x.c', '-o', '../../x.o'] },
        'INVALID_INPUT',
        /argument 2 "-o" must name the declared object "x.o"/,
      ],
      [
        'an option that runs another program',
        { args: ['-wrapper', 'sh,-c,id', '-c', 'x.c', '-o', 'x.o'] },
        'INVALID_INPUT',
        /argument 0 "-wrapper" runs or loads another program/,
      ],
      [
        'a response file',
        { args: ['-c', '@/etc/args', 'x.c', '-o', 'x.o'] },
        'INVALID_INPUT',
        /argument 1 "@\/etc\/args" is a response file/,
      ],
      ['an absolute workPath', { args: ['-c', { workPath: '/etc/passwd' }] }, 'INVALID_PATH'],
      ['a map dir with ..', { debugPrefixMaps: [{ dir: '..', to: '/x' }] }, 'INVALID_PATH'],
      ['a toolchain that is a path', { toolchain: '../x' }, 'INVALID_INPUT'],
      ['an unknown field', { command: 'sh' }, 'INVALID_INPUT', /unknown field "command"/],
      ['an env the agent keeps', { env: { LD_PRELOAD: '/x.so' } }, 'INVALID_INPUT', /LD_PRELOAD/],
      ['an env PATH', { env: { PATH: '/usr/bin' } }, 'INVALID_INPUT'],
      ['no object output', { outputs: [{ name: 'depfile', path: 'x.d' }] }, 'INVALID_INPUT'],
      ['an arg with NUL', { args: ['-c', 'x\0.c'] }, 'INVALID_INPUT'],
      ['no args', { args: [] }, 'INVALID_INPUT'],
    ];
    for (const [what, change, code, message] of cases) {
      const fake = await fakeContext();
      await symlink(outside, join(fake.ctx.workDir, 'out'));
      await assert.rejects(
        compile()({ ...good, ...change }, fake.ctx),
        hasCode(code, message),
        what,
      );
      assert.deepEqual(fake.tracked, [], `${what}: nothing was started`);
    }
    assert.deepEqual(await readdir(outside), [], 'nothing was made outside');
  });

  it('runs the driver with only its arguments, -nostdinc and the maps last, in a scrubbed environment', async () => {
    // A stand-in driver that prints what it was given (a shell script: sh's own export -p).
    const probe = '1'.repeat(64);
    await mkdir(join(toolchains, probe, 'bin'), { recursive: true });
    await writeFile(
      join(toolchains, `${probe}.json`),
      JSON.stringify({ glibc: '2.0', driver: 'bin/gcc' }),
    );
    await writeFile(
      join(toolchains, probe, 'bin', 'gcc'),
      '#!/bin/sh\nfor a in "$@"; do printf "arg %s\\n" "$a"; done\nprintf "cwd %s\\n" "$(pwd -P)"\nexport -p\n: > x.o\n',
      { mode: 0o755 },
    );
    const fake = await fakeContext();
    const result = await compile()(
      {
        toolchain: probe,
        driver: 'bin/gcc',
        args: ['-O2', '-c', { workPath: 'root/abs/x.c' }, '-o', 'x.o'],
        cwd: 'sub/dir',
        debugPrefixMaps: [
          { dir: 'sub/dir', to: '/home/me/proj' },
          { dir: 'root', to: '' },
        ],
        env: { LC_ALL: 'C', SOURCE_DATE_EPOCH: '1' },
        outputs: [{ name: 'object', path: 'sub/dir/x.o' }],
      },
      fake.ctx,
    );
    assert.equal(result.exitCode, 0, result.stderr);
    const work = await realpath(fake.ctx.workDir);
    const probeRoot = await realpath(join(toolchains, probe));
    const lines = result.stdout.split('\n');
    assert.deepEqual(
      lines.filter((l) => l.startsWith('arg ')).map((l) => l.slice(4)),
      [
        '-O2',
        '-c',
        join(work, 'root/abs/x.c'),
        '-o',
        'x.o',
        '-nostdinc',
        `-fdebug-prefix-map=${join(work, 'sub/dir')}=/home/me/proj`,
        `-fdebug-prefix-map=${join(work, 'root')}=`,
      ],
    );
    assert.ok(lines.includes(`cwd ${join(work, 'sub/dir')}`));
    const exported = new Map(
      lines
        .filter((l) => l.startsWith('export '))
        .map((l) => /^export ([A-Za-z_][A-Za-z0-9_]*)(?:='(.*)')?$/.exec(l))
        .map((m) => [m?.[1] ?? '', m?.[2] ?? ''] as const),
    );
    // Nothing of the agent's (HOME, its PATH, MUSTER_*): the toolchain's dirs and the client's few.
    const own = new Set(['PWD', 'OLDPWD']); // what sh itself sets
    assert.deepEqual([...exported.keys()].filter((k) => !own.has(k)).sort(), [
      'LC_ALL',
      'LD_LIBRARY_PATH',
      'PATH',
      'SOURCE_DATE_EPOCH',
      'TMPDIR',
    ]);
    assert.equal(exported.get('PATH'), join(probeRoot, 'bin'));
    assert.equal(exported.get('LD_LIBRARY_PATH'), join(probeRoot, 'lib', 'shared'));
    assert.match(exported.get('TMPDIR') ?? '', new RegExp(`^${work}/\\.cc-tmp-`));
    assert.deepEqual(result.outputs, [{ name: 'object', path: 'sub/dir/x.o', size: 0 }]);
  });

  it('stops the compiler on cancel: its process group is killed and released', async () => {
    const slow = '2'.repeat(64);
    await mkdir(join(toolchains, slow, 'bin'), { recursive: true });
    await writeFile(
      join(toolchains, `${slow}.json`),
      JSON.stringify({ glibc: '2.0', driver: 'bin/gcc' }),
    );
    await writeFile(join(toolchains, slow, 'bin', 'gcc'), '#!/bin/sh\nexec /bin/sleep 600\n', {
      mode: 0o755,
    });
    const fake = await fakeContext();
    const controller = new AbortController();
    let tracked: () => void = () => undefined;
    const started = new Promise<void>((resolve) => (tracked = resolve));
    const ctx: OperationContext = {
      ...fake.ctx,
      signal: controller.signal,
      trackProcess: (pid) => {
        fake.ctx.trackProcess(pid);
        tracked();
      },
    };
    const running = compile()(
      {
        toolchain: slow,
        driver: 'bin/gcc',
        args: ['-c', 'x.c', '-o', 'x.o'],
        outputs: [{ name: 'object', path: 'x.o' }],
      },
      ctx,
    );
    await started;
    controller.abort();
    const result = await running;
    assert.equal(result.exitCode, null);
    assert.equal(result.signal, 'SIGTERM');
    assert.deepEqual(result.outputs, []);
    assert.deepEqual(fake.untracked, fake.tracked);
    const [pgid] = fake.tracked;
    assert.throws(() => process.kill(-(pgid ?? 0), 0), /ESRCH/, 'the group is gone');
  });

  it('runs in the host from its bundle: the object as an output blob, a compile error as a failed task', async () => {
    // The bundle the agent materialises: extensions/cc/ beside toolchains/ (made in before()).
    const bundle = dirname(toolchains);
    await cp(
      fileURLToPath(new URL('../../src/extensions/cc/', import.meta.url)),
      join(bundle, 'extensions', 'cc'),
      { recursive: true },
    );
    await writeFile(join(bundle, 'package.json'), '{ "type": "module" }\n');
    const cc = await loadExtension(join(bundle, 'extensions', 'cc'));
    assert.deepEqual([...cc.operations.keys()], ['compile']);

    const blobDir = join(scratch, 'blobs');
    await mkdir(join(blobDir, '.incoming'), { recursive: true });
    const putBlob = async (data: Buffer): Promise<string> => {
      const sha256 = createHash('sha256').update(data).digest('hex');
      await mkdir(join(blobDir, sha256.slice(0, 2)), { recursive: true });
      await writeFile(join(blobDir, sha256.slice(0, 2), sha256), data, { mode: 0o444 });
      return sha256;
    };
    const runTask = async (source: string, object: string, toolchain = gcc.id) => {
      const sent: HostToAgent[] = [];
      const text = await putBlob(await directivesText(client, source));
      const task = new TaskRun(
        {
          send: (msg) => sent.push(msg),
          blobDir,
          baseEnv: { PATH: process.env.PATH ?? '' },
          extensions: new Map([['cc', cc]]),
        },
        {
          t: 'start',
          taskId: `host-${++count}`,
          extension: 'cc',
          operation: 'compile',
          input: {
            toolchain,
            driver: gcc.driver,
            args: ['-O2', '-g', '-c', source, '-o', object],
            debugPrefixMaps: [{ dir: '', to: client }],
            outputs: [{ name: 'object', path: object }],
          },
          inputs: [{ path: source, sha256: text, mode: 0o644 }],
          outputs: [object],
          env: {},
          workDir: join(scratch, 'work', `host-${count}`),
        },
      );
      const result = await task.run();
      const stderr = sent
        .flatMap((m) => (m.t === 'output' && m.stream === 'stderr' ? [Buffer.from(m.data)] : []))
        .map((b) => b.toString())
        .join('');
      return { result, stderr };
    };

    await mkdir(join(client, 'obj'), { recursive: true });
    runGcc(['-O2', '-g', '-c', 'src/scale.c', '-o', 'obj/host-local.o'], client);
    const local = await readFile(join(client, 'obj', 'host-local.o'));
    const ok = await runTask('src/scale.c', 'obj/scale.o');
    assert.equal(ok.result.status, 'succeeded', JSON.stringify(ok.result.error));
    assert.equal(ok.result.exitCode, 0);
    const [output] = ok.result.outputs ?? [];
    assert.equal(output?.path, 'obj/scale.o');
    assert.equal(output.sha256, createHash('sha256').update(local).digest('hex'), 'the object');

    const failed = await runTask('src/broken.c', 'broken.o');
    assert.equal(failed.result.status, 'failed');
    assert.equal(failed.result.exitCode, 1);
    assert.equal(failed.result.outputs, undefined);
    assert.match(failed.stderr, /error: .*undeclared_name/, 'the diagnostics are in the log');
    assert.equal((failed.result.value as CompileResult).stderr, failed.stderr);

    // The extension's codes reach the task's error as they are.
    const absent = await runTask('src/scale.c', 'obj/scale.o', '9'.repeat(64));
    assert.equal(absent.result.status, 'failed');
    assert.equal(absent.result.error?.code, 'TOOLCHAIN_NOT_FOUND');
  });
});
