import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDuration, parseHostPort } from '../../src/common/duration.js';
import { compileAgentOptions } from '../../src/agent/options.js';

describe('options', () => {
  it('parses durations', () => {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('1.5m'), 90_000);
    assert.equal(parseDuration('7d'), 7 * 86_400_000);
    assert.equal(parseDuration('0'), 0, 'zero needs no unit');
    assert.throws(() => parseDuration('soon'), { code: 'INVALID_CONFIG' });
  });

  it('refuses a number without a unit, saying how to write it', () => {
    assert.throws(() => parseDuration('30', '--drain-timeout'), {
      code: 'INVALID_CONFIG',
      message:
        '--drain-timeout "30" has no unit: write 30s, 30m or 30ms (examples: 500ms, 30s, 10m, 1h, 7d)',
    });
    assert.throws(() => parseDuration(' 1.5 '), { code: 'INVALID_CONFIG', message: /has no unit/ });
  });

  it('parses listen addresses', () => {
    const d = { host: '0.0.0.0', port: 7420 };
    assert.deepEqual(parseHostPort('127.0.0.1:0', d), { host: '127.0.0.1', port: 0 });
    assert.deepEqual(parseHostPort('[::1]:9000', d), { host: '::1', port: 9000 });
    assert.deepEqual(parseHostPort('9000', d), { host: '0.0.0.0', port: 9000 });
    assert.deepEqual(parseHostPort('example.org', d), { host: 'example.org', port: 7420 });
    assert.throws(() => parseHostPort('host:99999', d), { code: 'INVALID_CONFIG' });
  });

  it('validates the agent options once, into frozen values', () => {
    const options = compileAgentOptions({ listen: '127.0.0.1:0', data: '/tmp/x' });
    assert.ok(Object.isFrozen(options));
    assert.equal(options.tempDir, '/tmp/x/temp');
    assert.equal(options.taskGraceMs, 30 * 60_000);
    assert.equal(options.tls, 'self-signed');
    assert.throws(() => compileAgentOptions({ accessKey: 'short' }), { code: 'INVALID_CONFIG' });
    assert.throws(() => compileAgentOptions({ accessKey: 'x'.repeat(20), accessKeyFile: 'f' }), {
      code: 'INVALID_CONFIG',
    });
    assert.throws(() => compileAgentOptions({ tlsCert: 'c' }), { code: 'INVALID_CONFIG' });
    assert.throws(() => compileAgentOptions({ tls: false, tlsCert: 'c', tlsKey: 'k' }), {
      code: 'INVALID_CONFIG',
    });
    assert.throws(() => compileAgentOptions({ logLevel: 'loud' }), { code: 'INVALID_CONFIG' });
  });
});
