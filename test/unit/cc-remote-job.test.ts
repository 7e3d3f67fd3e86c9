/**
 * The client's layout of a remote compile (src/cli/cc/remote-job.ts) against the agent's
 * operation (src/extensions/cc/compile.ts) with this machine's gcc as a shipped toolchain: real
 * command lines are classified, preprocessed (directives only), laid out by remoteJob and
 * compiled by cc/compile in a fresh work dir, and the object must be the plain local compile's,
 * byte for byte: relative, `../` and `./` sources, absolute sources and objects (CMake's), the
 * user's own prefix maps. Shapes the layout cannot reproduce are refused (they run locally).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { classify, preprocessArgv, type Compile } from '../../src/cli/cc/classify.js';
import { stripPrelude } from '../../src/cli/cc/directives.js';
import { remoteJob } from '../../src/cli/cc/remote-job.js';
import { discoverToolchain, type Toolchain } from '../../src/cli/cc/toolchain.js';
import { compileOperation } from '../../src/extensions/cc/compile.js';
import { materialiseToolchain, operationContext } from '../helpers/cc-fakes.js';
import { runGcc } from '../helpers/gcc.js';

let scratch: string;
let client: string;
let toolchains: string;
let gcc: Toolchain;
let count = 0;

async function write(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, text);
}

function classifyIn(cwd: string, words: string[]): Compile {
  const [compiler = '', ...args] = words;
  const c = classify({
    compiler,
    args,
    cwd,
    env: {},
    readResponseFile: () => null,
    exists: () => false,
  });
  assert.equal(c.kind, 'compile', words.join(' '));
  return c;
}

describe('remote compile jobs, client layout to agent object', () => {
  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'muster-cc-remote-job-'));
    client = join(scratch, 'client', 'proj');
    toolchains = join(scratch, 'toolchains');
    gcc = await discoverToolchain('gcc');
    await materialiseToolchain(gcc, toolchains);
    await write(join(client, 'inc', 'util.h'), '#define TWICE(x) (2 * (x))\n');
    await write(
      join(client, 'src', 'main.c'),
      '#include <stdio.h>\n#include "util.h"\nint main(void) { printf("%s %d\\n", __FILE__, TWICE(__LINE__)); return 0; }\n',
    );
    await write(join(client, 'src', 'plain.c'), 'int twice(int x) { return 2 * x; }\n');
    for (const d of ['obj', 'build/out', 'build/sub'])
      await mkdir(join(client, d), { recursive: true });
  });
  after(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  const cases: [cwd: string, command: string[]][] = [
    ['.', ['gcc', '-O2', '-g', '-Iinc', '-c', 'src/main.c', '-o', 'obj/main.o']],
    ['build', ['gcc', '-g', '-O2', '-I../inc', '-c', '../src/main.c', '-o', 'main.o']],
    ['build/sub', ['gcc', '-g', '-O1', '-c', '../../src/plain.c', '-o', 'plain.o']],
    ['.', ['gcc', '-O2', '-g', '-c', './src/plain.c', '-o', './obj/plain.o']],
    ['build', ['gcc', '-O2', '-g', '-IABS/inc', '-c', 'ABS/src/main.c', '-o', 'ABS/build/out/m.o']],
    ['build', ['gcc', '-O2', '-g', '-fdebug-prefix-map=ABS=/src/proj', '-c', 'ABS/src/plain.c']],
    [
      'build',
      ['gcc', '-O2', '-g', '-ffile-prefix-map=ABS/src=/s', '-c', 'ABS/src/plain.c', '-o', 'p.o'],
    ],
    ['.', ['gcc', '-O2', '-g', '-fdebug-prefix-map=ABS=.', '-c', 'src/plain.c', '-o', 'obj/p.o']],
    ['.', ['gcc', '-x', 'c++', '-O2', '-g', '-c', 'src/plain.c', '-o', 'obj/plain-cxx.o']],
  ];
  for (const [cwdRel, words] of cases) {
    it(`${cwdRel}$ ${words.join(' ')}`, async () => {
      const cwd = join(client, cwdRel);
      const command = words.map((w) => w.replace('ABS', client));
      const job = classifyIn(cwd, command);
      assert.deepEqual(job.localReasons, []);

      runGcc(command.slice(1), cwd);
      const local = await readFile(resolve(cwd, job.output));
      await rm(resolve(cwd, job.output));

      const pass = join(scratch, `pass-${++count}.i`);
      runGcc(preprocessArgv(job, pass), cwd);
      const stripped = stripPrelude(await readFile(pass));
      assert.ok(stripped !== null);

      const remote = remoteJob(job, gcc, cwd, { LC_ALL: 'C', HOME: '/root' });
      assert.ok(remote !== null, 'a shape the layout reproduces');
      assert.deepEqual(remote.input.env, { LC_ALL: 'C' });
      const work = join(scratch, 'work', String(count));
      await write(join(work, remote.source), '');
      await writeFile(join(work, remote.source), stripped.text);
      assert.equal(remote.input.outputs[0]?.path, remote.object);
      const result = await compileOperation({ toolchainsRoot: toolchains })(
        remote.input,
        operationContext(work, count),
      );
      assert.equal(result.exitCode, 0, result.stderr);
      assert.equal(result.stderr, '');
      const object = await readFile(join(work, remote.object));
      assert.ok(object.equals(local), 'the remote object differs from the local one');
    });
  }

  it('refuses the shapes it cannot lay out exactly (they run locally)', () => {
    for (const [cwdRel, words] of [
      ['.', ['gcc', '-c', 'src/../src/plain.c', '-o', 'obj/x.o']],
      ['.', ['gcc', '-c', 'src/plain.c', '-o', '../x.o']],
      ['.', ['gcc', '-c', 'src/plain.c', '-o', 'obj/../x.o']],
      ['.', ['gcc', '-c', 'ABS/src//plain.c', '-o', 'x.o']],
      ['.', ['gcc', '-g', '-fdebug-prefix-map==/x', '-c', 'src/plain.c', '-o', 'x.o']],
    ] as const) {
      const cwd = join(client, cwdRel);
      const job = classifyIn(
        cwd,
        words.map((w) => w.replace('ABS', client)),
      );
      assert.equal(remoteJob(job, gcc, cwd, {}), null, words.join(' '));
    }
  });
});
