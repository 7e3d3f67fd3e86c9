/**
 * The client's parts together on real command lines, against the real gcc: classify a command,
 * run its local `-E -fdirectives-only` pass (`preprocessArgv`), strip the prelude, compile the
 * text "as the agent would" (same relative path in another directory, `compileArgs`, `-nostdinc`,
 * the agent's directory mapped back last) and compare with the plain compile: the object and
 * the depfile must be byte-identical (design §2). The agent's half is built here by hand; the
 * real one is `src/extensions/cc/` (a later step).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { after, describe, it } from 'node:test';
import { classify, preprocessArgv, type Compile } from '../../src/cli/cc/classify.js';
import { stripPrelude } from '../../src/cli/cc/directives.js';
import { mapDebugPath } from '../../src/cli/cc/prefix-maps.js';
import { runGcc } from '../helpers/gcc.js';

const root = mkdtempSync(join(tmpdir(), 'muster-cc-hermetic-'));
const client = join(root, 'client');
const agent = join(root, 'agent');

function write(path: string, text: string | Buffer): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

write(join(client, 'inc', 'config.h'), '#define CONFIG_LEVEL 3\n');
write(
  join(client, 'inc', 'util.h'),
  '#include <string.h>\nstatic inline int len(const char *s) { return (int)strlen(s); }\n',
);
write(
  join(client, 'src', 'main.c'),
  [
    '#include <stdio.h>',
    '#include "util.h"',
    '#ifndef GREETING',
    '#error GREETING must be given',
    '#endif',
    'int main(int argc, char **argv) {',
    '  switch (argc) { case 1: argc++; /* FALLTHROUGH */ default: break; }',
    '  printf("%s %d %s %d\\n", GREETING, CONFIG_LEVEL, __FILE__, len(argv[0]) + __LINE__);',
    '  return 0;',
    '}',
    '',
  ].join('\n'),
);
write(
  join(client, 'src', 'shape.cc'),
  [
    '#include <vector>',
    '#include <string>',
    '#include "util.h"',
    'struct Shape { virtual ~Shape() = default; virtual double area() const = 0; };',
    'struct Sq : Shape { double s; explicit Sq(double x) : s(x) {} double area() const override { return s * s; } };',
    'double total(const std::vector<Shape*>& v) { double t = 0; for (auto* p : v) t += p->area(); return t + len(__FILE__); }',
    '',
  ].join('\n'),
);
write(join(client, 'src', 'plain.c'), 'int twice(int x) { return 2 * x; }\n');

after(() => rmSync(root, { recursive: true, force: true }));

/** Runs a command line (words split on single spaces) in `cwd` under the client's tree. */
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

interface Case {
  /** Directory under the client's tree the command runs in. */
  readonly cwd: string;
  readonly command: string[];
}

const CMAKE_DEP = ['-MD', '-MT', 'obj/main.o', '-MF', 'obj/main.o.d'];
const cases: Case[] = [
  {
    cwd: '.',
    command: [
      'gcc',
      '-O2',
      '-Iinc',
      '-DGREETING="hi"',
      '-include',
      'inc/config.h',
      '-c',
      'src/main.c',
      '-o',
      'obj/main.o',
    ],
  },
  {
    cwd: '.',
    command: [
      'gcc',
      '-O2',
      '-g',
      '-Wall',
      '-Wextra',
      '-Iinc',
      '-DGREETING="hi there"',
      '-DCONFIG_LEVEL=1',
      '-MD',
      '-c',
      'src/main.c',
      '-o',
      'obj/main.o',
    ],
  },
  {
    cwd: '.',
    command: [
      'gcc',
      '-O0',
      '-g',
      '-Iinc',
      '-DGREETING="x"',
      '-DCONFIG_LEVEL=2',
      '-MMD',
      '-MP',
      '-c',
      'src/main.c',
      '-o',
      'obj/main.o',
    ],
  },
  {
    cwd: '.',
    command: [
      'gcc',
      '-Wp,-MD,obj/.main.o.d',
      '-O2',
      '-Iinc',
      '-DGREETING="k"',
      '-DCONFIG_LEVEL=0',
      '-c',
      '-o',
      'obj/main.o',
      'src/main.c',
    ],
  },
  {
    cwd: '.',
    command: [
      'cc',
      '-I./inc',
      '-DGREETING="c"',
      '-DCONFIG_LEVEL=4',
      '-O3',
      ...CMAKE_DEP,
      '-c',
      'src/main.c',
      '-o',
      'obj/main.o',
    ],
  },
  {
    cwd: 'build',
    command: [
      'gcc',
      '-g',
      '-O2',
      '-I../inc',
      '-DGREETING="up"',
      '-DCONFIG_LEVEL=5',
      '-c',
      '../src/main.c',
      '-o',
      'main.o',
    ],
  },
  {
    cwd: '.',
    command: [
      'gcc',
      '-g',
      '-O1',
      '-fdebug-prefix-map=CLIENT=/src/proj',
      '-Iinc',
      '-DGREETING="m"',
      '-DCONFIG_LEVEL=6',
      '-c',
      'src/main.c',
      '-o',
      'obj/main.o',
    ],
  },
  {
    cwd: '.',
    command: [
      'g++',
      '-O2',
      '-g',
      '-std=c++17',
      '-Iinc',
      '-MMD',
      '-c',
      'src/shape.cc',
      '-o',
      'obj/shape.o',
    ],
  },
  { cwd: '.', command: ['gcc', '-x', 'c++', '-O2', '-c', 'src/plain.c', '-o', 'obj/plain.o'] },
  { cwd: '.', command: ['gcc', '-O2', '-g', '-c', 'src/plain.c'] },
];

describe('hermetic directives-only compiles are exact', () => {
  for (const [n, c] of cases.entries()) {
    const command = c.command.map((w) => w.replace('CLIENT', client));
    it(`${c.cwd}$ ${c.command.join(' ')}`, () => {
      const cwd = join(client, c.cwd);
      mkdirSync(join(cwd, 'obj'), { recursive: true });
      const job = classifyIn(cwd, command);
      assert.deepEqual(job.localReasons, []);
      const compiler = command[0] === 'g++' ? 'g++' : 'gcc';

      // 1. The plain compile, as make would run it.
      runGcc(command.slice(1), cwd, compiler);
      const object = readFileSync(join(cwd, job.output));
      const depfile = job.depfile === null ? null : readFileSync(join(cwd, job.depfile.path));
      rmSync(join(cwd, job.output));
      if (job.depfile !== null) rmSync(join(cwd, job.depfile.path));

      // 2. The local pass: it writes the depfile, byte for byte.
      const text = join(root, `pass-${n}.i`);
      runGcc(preprocessArgv(job, text), cwd, compiler);
      if (job.depfile !== null) {
        assert.deepEqual(readFileSync(join(cwd, job.depfile.path)), depfile, 'depfile');
      }
      const stripped = stripPrelude(readFileSync(text));
      assert.ok(stripped !== null);
      assert.equal(stripped.mainFile, job.source);

      // 3. "On the agent": the text at the source's relative place, nothing else.
      const work = join(agent, String(n));
      const agentCwd = join(work, c.cwd);
      mkdirSync(join(agentCwd, 'obj'), { recursive: true });
      const placed = join(agentCwd, job.source);
      assert.ok(!relative(work, placed).startsWith('..'));
      write(placed, stripped.text);
      const mapped = mapDebugPath(cwd, job.prefixMaps);
      runGcc(
        [
          ...job.compileArgs,
          '-nostdinc',
          '-c',
          ...(job.languageExplicit ? ['-x', job.language] : []),
          job.source,
          '-o',
          job.output,
          `-fdebug-prefix-map=${agentCwd}=${mapped}`,
        ],
        agentCwd,
        compiler,
      );
      assert.ok(readFileSync(join(agentCwd, job.output)).equals(object), 'objects differ');
    });
  }
});
