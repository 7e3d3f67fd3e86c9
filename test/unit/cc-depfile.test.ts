import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  formatDepfile,
  parseDepfile,
  prerequisitesOf,
  quoteDepName,
  type DepRule,
} from '../../src/cli/cc/depfile.js';
import { runGcc } from '../helpers/gcc.js';

function rules(text: string): readonly DepRule[] {
  const parsed = parseDepfile(text);
  assert.ok(parsed.ok, JSON.stringify(parsed));
  return parsed.rules;
}

describe('reading a depfile', () => {
  const cases: [string, DepRule[]][] = [
    ['x.o: x.c x.h\n', [{ targets: ['x.o'], prerequisites: ['x.c', 'x.h'] }]],
    [
      'sub/a\\ b.o: a\\ b.c my\\ hdr.h \\\n /usr/include/stdio.h\n',
      [{ targets: ['sub/a b.o'], prerequisites: ['a b.c', 'my hdr.h', '/usr/include/stdio.h'] }],
    ],
    [
      'sub/c$$x.o: c.c dir\\ with\\ space/q$$h\\#x.h\ndir\\ with\\ space/q$$h\\#x.h:\n',
      [
        { targets: ['sub/c$x.o'], prerequisites: ['c.c', 'dir with space/q$h#x.h'] },
        { targets: ['dir with space/q$h#x.h'], prerequisites: [] },
      ],
    ],
    // gcc doubles the backslashes before a blank: `w\ q.h` is written `w\\\ q.h`
    ['bs.o: bs.c w\\\\\\ q.h\n', [{ targets: ['bs.o'], prerequisites: ['bs.c', 'w\\ q.h'] }]],
    // an even run of backslashes before a blank: half of them, then a separator
    ['t: a\\\\ b\n', [{ targets: ['t'], prerequisites: ['a\\', 'b'] }]],
    // several targets (-MT 'foo bar' -MQ 'q$ #z')
    [
      'foo bar q$$\\ \\#z: c.c \\\n h.h\n',
      [{ targets: ['foo', 'bar', 'q$ #z'], prerequisites: ['c.c', 'h.h'] }],
    ],
    // a colon inside a name, CRLF, a comment, a backslash that escapes nothing
    [
      'C:\\obj\\x.o : C:\\src\\x.c # comment\r\n\r\n',
      [{ targets: ['C:\\obj\\x.o'], prerequisites: ['C:\\src\\x.c'] }],
    ],
    ['x.o:\n', [{ targets: ['x.o'], prerequisites: [] }]],
    ['', []],
  ];
  for (const [text, want] of cases) {
    it(JSON.stringify(text), () => assert.deepEqual(rules(text), want));
  }

  it('refuses a line with names and no colon', () => {
    assert.deepEqual(parseDepfile('x.o: x.c\nstray words\n'), {
      ok: false,
      line: 2,
      reason: 'no ":" in a rule',
    });
  });

  it('lists each prerequisite once', () => {
    assert.deepEqual(prerequisitesOf(rules('a.o: a.c h.h\nb.o: h.h b.h\nh.h:\n')), [
      'a.c',
      'h.h',
      'b.h',
    ]);
  });
});

describe('writing a depfile', () => {
  it('quotes as gcc does', () => {
    assert.equal(quoteDepName('a b'), 'a\\ b');
    assert.equal(quoteDepName('w\\ q.h'), 'w\\\\\\ q.h');
    assert.equal(quoteDepName('q$h#x'), 'q$$h\\#x');
    assert.equal(quoteDepName('tab\there'), 'tab\\\there');
    assert.equal(quoteDepName('plain\\name'), 'plain\\name');
  });

  it('wraps at 72 columns and writes -MP rules', () => {
    const text = formatDepfile({
      targets: [{ name: 'obj/long-object-name.o', quoted: true }],
      prerequisites: ['src/long-source-name.c', 'include/first-header.h', 'include/second.h'],
      phony: true,
    });
    assert.equal(
      text,
      'obj/long-object-name.o: src/long-source-name.c include/first-header.h \\\n' +
        ' include/second.h\n' +
        'include/first-header.h:\n' +
        'include/second.h:\n',
    );
  });

  it('writes -MT targets as given', () => {
    const text = formatDepfile({
      targets: [
        { name: 'foo bar', quoted: false },
        { name: 'q$ #z', quoted: true },
      ],
      prerequisites: ['c.c'],
      phony: false,
    });
    assert.equal(text, 'foo bar q$$\\ \\#z: c.c\n');
  });
});

describe('depfiles gcc writes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'muster-cc-depfile-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'dir with space'));
  mkdirSync(join(dir, 'sub'));
  writeFileSync(join(dir, 'my hdr.h'), 'int g(void);\n');
  writeFileSync(join(dir, 'dir with space', 'q$h#x.h'), 'int h(void);\n');
  writeFileSync(join(dir, 'w\\ q.h'), 'int w;\n');
  writeFileSync(
    join(dir, 'a b.c'),
    '#include "my hdr.h"\n#include "dir with space/q$h#x.h"\n#include "w\\ q.h"\n' +
      '#include <stdio.h>\nint f(void) { return 0; }\n',
  );
  const headers = ['my hdr.h', 'dir with space/q$h#x.h', 'w\\ q.h'];

  const runs: [string, string[], string, { targets: string[]; phony: boolean }][] = [
    [
      '-MD',
      ['-MD', '-c', 'a b.c', '-o', 'sub/a b.o'],
      'sub/a b.d',
      { targets: ['sub/a b.o'], phony: false },
    ],
    [
      '-MMD -MP',
      ['-MMD', '-MP', '-c', 'a b.c', '-o', 'sub/c$x.o'],
      'sub/c$x.d',
      { targets: ['sub/c$x.o'], phony: true },
    ],
    [
      '-MD -MQ',
      ['-MD', '-MQ', 'q$ #z', '-MF', 'zz.d', '-c', 'a b.c', '-o', 'z.o'],
      'zz.d',
      { targets: ['q$ #z'], phony: false },
    ],
  ];
  for (const [name, args, depfile, want] of runs) {
    it(`reads and rewrites gcc's own ${name} output byte for byte`, () => {
      runGcc(args, dir);
      const text = readFileSync(join(dir, depfile), 'utf8');
      const parsed = rules(text);
      const first = parsed[0];
      assert.ok(first !== undefined);
      assert.deepEqual(first.targets, want.targets);
      const prerequisites = prerequisitesOf(parsed);
      assert.equal(prerequisites[0], 'a b.c');
      for (const h of headers) assert.ok(prerequisites.includes(h), `${h} in ${text}`);
      assert.equal(prerequisites.includes('/usr/include/stdio.h'), name !== '-MMD -MP');
      const rewritten = formatDepfile({
        targets: want.targets.map((t) => ({ name: t, quoted: true })),
        prerequisites: first.prerequisites,
        phony: want.phony,
      });
      assert.equal(rewritten, text);
    });
  }
});
