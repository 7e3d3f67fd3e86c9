import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  includedFiles,
  parseLineMarker,
  stripPrelude,
  timeMacrosIn,
  unfixedTimeMacros,
} from '../../src/cli/cc/directives.js';
import { runGcc } from '../helpers/gcc.js';

/** The head of `gcc -g -DFOO=2 -include 'my hdr.h' -E -fdirectives-only d.c` (gcc 12.2), cut. */
const recorded = [
  '# 0 "d.c"',
  '# 1 "/tmp/ccx//"',
  '# 0 "<built-in>"',
  '#define __STDC__ 1',
  '# 0 "<built-in>"',
  '#define __GNUC__ 12',
  '# 0 "<command-line>"',
  '#define FOO 2',
  '# 0 "<command-line>"',
  '# 1 "/usr/include/stdc-predef.h" 1 3 4',
  '/* predef */',
  '#define __STDC_IEC_559__ 1',
  '# 0 "<command-line>" 2',
  '# 1 "./my hdr.h" 1',
  'int g(void);',
  '# 0 "<command-line>" 2',
  '# 1 "d.c"',
  '# 1 "my hdr.h" 1',
  'int g(void);',
  '# 2 "d.c" 2',
  '# 1 "/usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h" 1 3 4',
  'typedef long ptrdiff_t;',
  '# 3 "d.c" 2',
  '#define X 1',
  'const char *t = __TIME__;',
  '',
].join('\n');

describe('line markers', () => {
  it('reads file names with escapes, and flags', () => {
    assert.deepEqual(parseLineMarker(Buffer.from('# 12 "a\\"b\\\\c.h" 1 3 4')), {
      line: 12,
      file: 'a"b\\c.h',
      flags: [1, 3, 4],
    });
    assert.deepEqual(parseLineMarker(Buffer.from('# 0 "<built-in>"')), {
      line: 0,
      file: '<built-in>',
      flags: [],
    });
    assert.deepEqual(parseLineMarker(Buffer.from('# 1 "caf\xc3\xa9.h"', 'latin1'))?.file, 'café.h');
    assert.equal(parseLineMarker(Buffer.from('#define X 1')), null);
    assert.equal(parseLineMarker(Buffer.from('# 1 "unterminated')), null);
  });
});

describe('stripping the prelude (recorded output)', () => {
  it('keeps the pre-include, -include files and the source; drops built-ins and -D', () => {
    const stripped = stripPrelude(Buffer.from(recorded));
    assert.ok(stripped !== null);
    assert.equal(stripped.mainFile, 'd.c');
    assert.equal(stripped.workingDirectory, '/tmp/ccx');
    assert.equal(
      stripped.text.toString(),
      [
        '# 1 "/usr/include/stdc-predef.h" 1 3 4',
        '/* predef */',
        '#define __STDC_IEC_559__ 1',
        '# 1 "./my hdr.h" 1',
        'int g(void);',
        ...recorded.split('\n').slice(16),
      ].join('\n'),
    );
  });

  it('lists the files read, once each, system headers marked', () => {
    assert.deepEqual(includedFiles(Buffer.from(recorded), 'd.c'), [
      { path: '/usr/include/stdc-predef.h', system: true },
      { path: './my hdr.h', system: false },
      { path: 'my hdr.h', system: false },
      { path: '/usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h', system: true },
    ]);
  });

  it('keeps bytes that are not UTF-8', () => {
    const text = Buffer.concat([
      Buffer.from('# 0 "l.c"\n# 0 "<built-in>"\n#define A 1\n# 1 "l.c"\n'),
      Buffer.from([0x2f, 0x2a, 0xe9, 0xff, 0x2a, 0x2f, 0x0a]),
    ]);
    const stripped = stripPrelude(text);
    assert.deepEqual(
      stripped?.text,
      Buffer.concat([Buffer.from('# 1 "l.c"\n'), text.subarray(-7)]),
    );
    assert.equal(stripped?.workingDirectory, null);
  });

  it('refuses text that is not directives-only output', () => {
    assert.equal(stripPrelude(Buffer.from('int x;\n')), null);
    assert.equal(stripPrelude(Buffer.from('# 0 "x.c"\n# 0 "<built-in>"\n#define A 1\n')), null);
    assert.equal(stripPrelude(Buffer.from('')), null);
  });

  it('finds the time macros', () => {
    assert.deepEqual(timeMacrosIn(Buffer.from(recorded)), ['__TIME__']);
    assert.deepEqual(timeMacrosIn(Buffer.from('__TIMESTAMP__ __DATE__')), [
      '__DATE__',
      '__TIMESTAMP__',
    ]);
    assert.deepEqual(timeMacrosIn(Buffer.from('int time;')), []);
  });

  it('SOURCE_DATE_EPOCH fixes __DATE__ and __TIME__, never __TIMESTAMP__ (the file’s mtime)', () => {
    const all = ['__DATE__', '__TIME__', '__TIMESTAMP__'] as const;
    assert.deepEqual(unfixedTimeMacros(all, {}), all);
    assert.deepEqual(unfixedTimeMacros(all, { SOURCE_DATE_EPOCH: '0' }), ['__TIMESTAMP__']);
    assert.deepEqual(unfixedTimeMacros(['__DATE__'], { SOURCE_DATE_EPOCH: '0' }), []);
  });
});

describe('stripping real gcc -E -fdirectives-only output', () => {
  const dir = mkdtempSync(join(tmpdir(), 'muster-cc-directives-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const agent = join(dir, 'agent');
  mkdirSync(agent);
  writeFileSync(join(dir, 'my hdr.h'), '/* hdr */\nint g(void);\n');
  writeFileSync(
    join(dir, 'd.c'),
    [
      '#include "my hdr.h"',
      '#include <stddef.h>',
      '#include <stdio.h>',
      '#define X 1',
      '/* FALLTHROUGH stays: comments are kept */',
      'int f(int a) { switch (a) { case 0: a++; /* FALLTHROUGH */ case 1: return X + FOO + __LINE__; } return sizeof(size_t); }',
      'const char *file = __FILE__;',
      'int main(void) { printf("%d %s\\n", f(0), file); return g(); }',
      'int g(void) { return 0; }',
      '',
    ].join('\n'),
  );

  for (const flags of [['-O2'], ['-O2', '-g'], ['-O0', '-g', '-Wall', '-Wextra']]) {
    it(`the stripped text compiles as the source to the same object (${flags.join(' ')})`, () => {
      const common = [...flags, '-DFOO=2'];
      runGcc(
        [...common, '-include', 'my hdr.h', '-E', '-fdirectives-only', 'd.c', '-o', 'd.i'],
        dir,
      );
      const stripped = stripPrelude(readFileSync(join(dir, 'd.i')));
      assert.ok(stripped !== null);
      assert.equal(stripped.mainFile, 'd.c');
      assert.equal(stripped.workingDirectory, flags.includes('-g') ? dir : null);
      const text = stripped.text.toString('latin1');
      assert.ok(!text.includes('<built-in>') && !text.includes('<command-line>'));
      assert.ok(!text.includes('#define __STDC__'));
      assert.ok(text.includes('/* FALLTHROUGH */'));
      const files = includedFiles(stripped.text, 'd.c').map((f) => f.path);
      assert.ok(files.includes('my hdr.h') && files.includes('./my hdr.h'), files.join());
      assert.ok(files.some((f) => f.endsWith('/stdio.h')));
      assert.ok(
        includedFiles(stripped.text, 'd.c').every((f) => f.system === f.path.startsWith('/')),
      );

      // The compile here, and the hermetic one "on the agent": the text under the same name in
      // another directory, no include path, the agent's directory mapped back to this one.
      runGcc([...common, '-include', 'my hdr.h', '-c', 'd.c', '-o', 'local.o'], dir);
      writeFileSync(join(agent, 'd.c'), stripped.text);
      runGcc(
        [
          ...common,
          '-nostdinc',
          '-c',
          'd.c',
          '-o',
          'remote.o',
          `-fdebug-prefix-map=${agent}=${dir}`,
        ],
        agent,
      );
      assert.ok(
        readFileSync(join(dir, 'local.o')).equals(readFileSync(join(agent, 'remote.o'))),
        'objects differ',
      );
    });
  }
});
