import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileAgentOptions } from '../../src/agent/options.js';

describe('agent options: limits before authentication', () => {
  it('has small defaults', () => {
    const options = compileAgentOptions({ data: '/tmp/muster-options-test' });
    assert.equal(options.preAuthMaxFrameBytes, 16 * 1024);
    assert.equal(options.maxFrameBytes, 4 * 1024 * 1024);
    assert.equal(options.maxUnauthenticated, 256);
    assert.equal(options.maxUnauthenticatedPerAddress, 16);
    assert.equal(options.handshakeTimeoutMs, 10_000);
  });

  it('refuses limits that make no sense', () => {
    for (const bad of [
      { preAuthMaxFrameBytes: 100 },
      { preAuthMaxFrameBytes: 8 * 1024 * 1024 },
      { maxUnauthenticated: 0 },
      { maxUnauthenticatedPerAddress: 1.5 },
    ]) {
      assert.throws(
        () => compileAgentOptions(bad),
        { code: 'INVALID_CONFIG' },
        JSON.stringify(bad),
      );
    }
  });

  it('never lets one address hold more than the total', () => {
    const options = compileAgentOptions({
      maxUnauthenticated: 4,
      maxUnauthenticatedPerAddress: 16,
    });
    assert.equal(options.maxUnauthenticatedPerAddress, 4);
  });
});
