import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSize } from '../../src/common/size.js';

describe('sizes as people write them', () => {
  it('reads numbers and units, decimal and binary, any case', () => {
    const cases: [number | string, number][] = [
      [0, 0],
      [1048576, 1048576],
      ['1048576', 1048576],
      ['512MiB', 512 * 2 ** 20],
      ['20 GB', 20e9],
      ['10GiB', 10 * 2 ** 30],
      ['1.5kib', 1536],
      ['2k', 2000],
      ['1T', 1e12],
      ['  3 mb ', 3e6],
      ['7b', 7],
    ];
    for (const [text, bytes] of cases) assert.equal(parseSize(text), bytes, String(text));
  });

  it('refuses what is not a size', () => {
    for (const bad of ['', 'GiB', '20 apples', '-1', '1.5', '1.5b', '1e3', '0x10', -1, Number.NaN])
      assert.equal(parseSize(bad), undefined, String(bad));
  });
});
