/** The coordinator's options as they are checked at start-up (src/coordinator/options.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileCoordinatorOptions } from '../../src/coordinator/options.js';
import { MusterError } from '../../src/protocol/errors.js';

const base = { listen: '127.0.0.1:0', data: '/tmp/muster-options-test' };

describe('coordinator options: --toolchain-retention', () => {
  it('defaults to 30 days and takes a duration', () => {
    assert.equal(compileCoordinatorOptions(base).toolchainRetentionMs, 30 * 86_400_000);
    assert.equal(
      compileCoordinatorOptions({ ...base, toolchainRetention: '7d' }).toolchainRetentionMs,
      7 * 86_400_000,
    );
  });

  it('refuses no time at all and what is not a duration, naming the flag', () => {
    for (const toolchainRetention of ['0s', 'soon']) {
      assert.throws(
        () => compileCoordinatorOptions({ ...base, toolchainRetention }),
        (err: unknown) =>
          err instanceof MusterError &&
          err.code === 'INVALID_CONFIG' &&
          err.message.includes('--toolchain-retention'),
        toolchainRetention,
      );
    }
  });
});
