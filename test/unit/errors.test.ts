import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { errorCodes, MusterError, toMusterError } from '../../src/protocol/errors.js';

describe('error codes', () => {
  it('are all documented in docs/errors.md, and the docs list no code that does not exist', async () => {
    const doc = await readFile(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
    const documented = new Set([...doc.matchAll(/^\| `([A-Z_]+)` *\|/gm)].map((m) => m[1]));
    assert.deepEqual([...documented].sort(), Object.keys(errorCodes).sort());
  });

  it('wrap unknown errors as INTERNAL with the cause kept', () => {
    const cause = new Error('boom');
    const err = toMusterError(cause);
    assert.equal(err.code, 'INTERNAL');
    assert.equal(err.cause, cause);
    const same = new MusterError('AUTH_FAILED');
    assert.equal(toMusterError(same), same);
    assert.deepEqual(same.toWire(), { code: 'AUTH_FAILED', message: errorCodes.AUTH_FAILED });
  });
});
