import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MusterError } from '../../src/protocol/errors.js';
import { checkManifest, versionIdOf, type Manifest } from '../../src/protocol/manifest.js';
import { checkRelativePath } from '../../src/protocol/paths.js';

const sha = (c: string): string => c.repeat(64);
const file = (path: string, s = 'a'): Manifest['files'][number] => ({
  path,
  sha256: sha(s),
  size: 1,
  mode: 0o644,
});
const isCode = (code: string) => (err: unknown) => err instanceof MusterError && err.code === code;

describe('paths', () => {
  it('accepts plain relative paths', () => {
    for (const p of ['a', 'a/b/c.js', '.hidden', 'a..b', 'x/...'])
      assert.equal(checkRelativePath(p), p);
  });

  it('refuses paths that could escape or confuse', () => {
    for (const p of [
      '',
      '/etc/passwd',
      '../x',
      'a/../../x',
      'a/./b',
      'a//b',
      'a/',
      'C:/x',
      'a\\b',
      'a\0b',
      'x'.repeat(1025),
    ]) {
      assert.throws(() => checkRelativePath(p), isCode('INVALID_PATH'), JSON.stringify(p));
    }
  });
});

describe('manifests', () => {
  it('gives the same version id whatever the file order, and another for other content', () => {
    const a: Manifest = { entry: 'host/main.js', files: [file('host/main.js'), file('x', 'b')] };
    const b: Manifest = {
      entry: 'host/main.js',
      files: [file('x', 'b'), file('host/main.js')],
      label: 'other label',
    };
    const c: Manifest = { entry: 'host/main.js', files: [file('host/main.js'), file('x', 'c')] };
    assert.equal(versionIdOf(a), versionIdOf(b));
    assert.notEqual(versionIdOf(a), versionIdOf(c));
  });

  it('refuses duplicates, a file that is also a directory, an unlisted entry and bad paths', () => {
    assert.throws(
      () => checkManifest({ entry: 'a', files: [file('a'), file('a')] }),
      isCode('INVALID_MANIFEST'),
    );
    assert.throws(
      () => checkManifest({ entry: 'a', files: [file('a'), file('a/b')] }),
      isCode('INVALID_MANIFEST'),
    );
    assert.throws(
      () => checkManifest({ entry: 'b', files: [file('a')] }),
      isCode('INVALID_MANIFEST'),
    );
    assert.throws(
      () => checkManifest({ entry: 'a', files: [file('a'), file('../b')] }),
      isCode('INVALID_PATH'),
    );
  });
});
