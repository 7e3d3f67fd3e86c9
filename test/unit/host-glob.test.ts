import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GlobSet, expandBraces, globMatch } from '../../src/host/glob.js';

void describe('host glob matcher', () => {
  const cases: [pattern: string, path: string, expected: boolean][] = [
    ['*.txt', 'a.txt', true],
    ['*.txt', 'dir/a.txt', false],
    ['*.txt', '.hidden.txt', false],
    ['.*.txt', '.hidden.txt', true],
    ['out/*', 'out/a', true],
    ['out/*', 'out/a/b', false],
    ['out/**', 'out/a', true],
    ['out/**', 'out/a/b/c', true],
    ['out/**', 'out', false],
    ['out/**', 'out/.git/x', false],
    ['**', 'a/b/c', true],
    ['**', '.env', false],
    ['**/*.js', 'a.js', true],
    ['**/*.js', 'x/y/a.js', true],
    ['**/*.js', 'x/.y/a.js', false],
    ['a/**/b', 'a/b', true],
    ['a/**/b', 'a/x/y/b', true],
    ['a/**/b', 'a/x/y/c', false],
    ['?.c', 'a.c', true],
    ['?.c', 'ab.c', false],
    ['?.c', '/.c', false],
    ['[abc].o', 'b.o', true],
    ['[abc].o', 'd.o', false],
    ['[a-c].o', 'c.o', true],
    ['[!a-c].o', 'd.o', true],
    ['[^a-c].o', 'a.o', false],
    ['[].o', '[].o', true],
    ['{a,b}.txt', 'a.txt', true],
    ['{a,b}.txt', 'c.txt', false],
    ['src/{lib,bin/{x,y}}/*.js', 'src/bin/y/m.js', true],
    ['src/{lib,bin/{x,y}}/*.js', 'src/bin/z/m.js', false],
    ['*.{js,map}', 'a.map', true],
    ['{a}', '{a}', true],
    ['\\*.txt', '*.txt', true],
    ['\\*.txt', 'a.txt', false],
    ['a+b(1).txt', 'a+b(1).txt', true],
    ['./dist/*.js', 'dist/a.js', true],
    ['dist/app.js', 'dist/app.js', true],
    ['dist/app.js', 'dist/app.jsx', false],
  ];
  for (const [pattern, path, expected] of cases) {
    void it(`${pattern} ${expected ? 'matches' : 'does not match'} ${path}`, () => {
      assert.equal(globMatch(pattern, path), expected);
    });
  }

  void it('expands braces in order', () => {
    assert.deepEqual(expandBraces('a{b,c{d,e}}f'), ['abf', 'acdf', 'acef']);
    assert.deepEqual(expandBraces('{x,y}/{1,2}'), ['x/1', 'x/2', 'y/1', 'y/2']);
  });

  void it('knows which directories need walking', () => {
    const set = new GlobSet(['dist/**/*.js', 'dist/sub/*.map', 'out/a.txt', 'build/{x,y}/*']);
    assert.deepEqual([...set.literals], ['out/a.txt']);
    assert.deepEqual(set.walkBases, ['build/x', 'build/y', 'dist']);
    assert.deepEqual(new GlobSet(['dist/*', '*.o']).walkBases, ['']);
  });

  void it('refuses patterns that leave the work dir', () => {
    for (const bad of ['../x', 'a/../../x', '/etc/*', '', 'a//b']) {
      assert.throws(() => new GlobSet([bad]), { code: 'INVALID_PATH' }, bad);
    }
  });
});
