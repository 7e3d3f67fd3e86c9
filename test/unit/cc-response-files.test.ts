import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  expandResponseFiles,
  MAX_RESPONSE_BYTES,
  splitResponseText,
} from '../../src/cli/cc/response-files.js';
import { cc1Args } from '../helpers/gcc.js';

function reader(files: Record<string, string>): (path: string) => Buffer | null {
  return (path) => {
    const text = files[path];
    return text === undefined ? null : Buffer.from(text);
  };
}

describe('response file text (libiberty buildargv)', () => {
  const cases: [string, string[]][] = [
    ['', []],
    ['  \n\t\r\n', []],
    ['a b', ['a', 'b']],
    ['  a\n\nb  ', ['a', 'b']],
    ["'a b'", ['a b']],
    ['"a b"', ['a b']],
    ['a\\ b', ['a b']],
    ["'it\\'s'", ["it's"]],
    ['"q\\"r"', ['q"r']],
    ['back\\\\slash', ['back\\slash']],
    ['C:\\dir\\file.c', ['C:dirfile.c']],
    ["''", ['']],
    ["a '' b", ['a', '', 'b']],
    ['-DX="a b"c', ['-DX=a bc']],
    ['-DS=\'"str"\'', ['-DS="str"']],
    ["'unterminated", ['unterminated']],
    ['a\\\nb', ['a\nb']],
    ['x\fy\vz', ['x', 'y', 'z']],
    ['@nested.rsp', ['@nested.rsp']],
  ];
  for (const [text, want] of cases) {
    it(JSON.stringify(text), () => assert.deepEqual(splitResponseText(text), want));
  }
});

describe('expanding @file arguments', () => {
  it('replaces @file by its arguments, in place, and rescans them', () => {
    const read = reader({
      '/w/a.rsp': '-O2 @sub/b.rsp -c',
      '/w/sub/b.rsp': '-DB @/abs/c.rsp',
      '/abs/c.rsp': '-DC',
    });
    assert.deepEqual(expandResponseFiles(['-Wall', '@a.rsp', 'x.c'], '/w', read), {
      ok: true,
      args: ['-Wall', '-O2', '-DB', '-DC', '-c', 'x.c'],
      files: ['a.rsp', 'sub/b.rsp', '/abs/c.rsp'],
    });
  });

  it('keeps an unreadable @file and a lone @ as they are; an empty file adds nothing', () => {
    const read = reader({ '/w/empty.rsp': ' \n' });
    assert.deepEqual(expandResponseFiles(['@missing', '@', '@empty.rsp', 'x'], '/w', read), {
      ok: true,
      args: ['@missing', '@', 'x'],
      files: ['empty.rsp'],
    });
  });

  it('stops at a loop and at the size cap', () => {
    const loop = expandResponseFiles(['@l'], '/w', reader({ '/w/l': '@l' }));
    assert.deepEqual(loop, { ok: false, reason: 'too many response files' });
    const big = 'x '.repeat(MAX_RESPONSE_BYTES / 2 + 1);
    const tooBig = expandResponseFiles(['@big'], '/w', reader({ '/w/big': big }));
    assert.deepEqual(tooBig, { ok: false, reason: 'response files too large' });
  });

  describe('as gcc expands them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'muster-cc-rsp-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'x.c'), 'int x;\n');
    const text = [
      '-DA=\'x y\' -DB="q\\"r" -DC=a\\ b',
      "-DD=back\\\\\\\\slash -DE='it\\'s' @more.rsp",
      '',
    ].join('\n');
    writeFileSync(join(dir, 'flags.rsp'), text);
    writeFileSync(join(dir, 'more.rsp'), '-DF=\'"s"\'\t-DG=\n');

    it('gives cc1 the same macros', () => {
      const read = (path: string): Buffer | null =>
        path === join(dir, 'flags.rsp')
          ? Buffer.from(text)
          : path === join(dir, 'more.rsp')
            ? Buffer.from('-DF=\'"s"\'\t-DG=\n')
            : null;
      const ours = expandResponseFiles(['@flags.rsp', '-c', 'x.c'], dir, read);
      assert.ok(ours.ok);
      const macros = (cc1: string[]): string[] =>
        cc1.flatMap((a, i) => (a === '-D' ? [cc1[i + 1] ?? ''] : []));
      const fromGcc = macros(cc1Args(['@flags.rsp', '-c', 'x.c'], dir));
      assert.deepEqual(fromGcc, [
        'A=x y',
        'B=q"r',
        'C=a b',
        'D=back\\\\slash',
        "E=it's",
        'F="s"',
        'G=',
      ]);
      assert.deepEqual(macros(cc1Args(ours.args, dir)), fromGcc);
    });
  });
});
