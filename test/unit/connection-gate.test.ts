import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Logger } from 'pino';
import { ConnectionGate, type GateTicket } from '../../src/common/connection-gate.js';
import { addressBlock, addressKey } from '../../src/common/addresses.js';
import { LogLimiter } from '../../src/agent/log-limiter.js';

function admitted(gate: ConnectionGate, address: string, evicted: string[]): GateTicket {
  const admission = gate.admit(address, () => evicted.push(address));
  assert.ok('admitted' in admission, `${address} was refused`);
  return admission.admitted;
}

describe('connection gate', () => {
  it('refuses a new connection from an address at its cap; a release frees a place', () => {
    const gate = new ConnectionGate({ maxTotal: 10, maxPerAddress: 2 });
    const evicted: string[] = [];
    const a = admitted(gate, '10.0.0.1', evicted);
    admitted(gate, '10.0.0.1', evicted);
    assert.deepEqual(
      gate.admit('10.0.0.1', () => undefined),
      { refused: 'per-address' },
    );
    admitted(gate, '10.0.0.2', evicted);
    a.release();
    a.release(); // idempotent: frees one place, not two
    admitted(gate, '10.0.0.1', evicted);
    assert.deepEqual(
      gate.admit('10.0.0.1', () => undefined),
      { refused: 'per-address' },
    );
    assert.deepEqual(evicted, []);
    assert.equal(gate.size, 3);
  });

  it('evicts the oldest entry to admit one over the total cap', () => {
    const gate = new ConnectionGate({ maxTotal: 3, maxPerAddress: 3 });
    const evicted: string[] = [];
    admitted(gate, '10.0.0.1', evicted);
    const second = admitted(gate, '10.0.0.2', evicted);
    admitted(gate, '10.0.0.3', evicted);
    const admission = gate.admit('10.0.0.4', () => evicted.push('10.0.0.4'));
    assert.ok('admitted' in admission);
    assert.equal(admission.evicted, '10.0.0.1');
    assert.deepEqual(evicted, ['10.0.0.1']);
    // An entry that authenticated (released) is never evicted.
    second.release();
    admitted(gate, '10.0.0.5', evicted);
    admitted(gate, '10.0.0.6', evicted);
    assert.deepEqual(evicted, ['10.0.0.1', '10.0.0.3']);
    assert.equal(gate.size, 3);
    // The evicted address's place is free again.
    admitted(gate, '10.0.0.1', evicted);
    gate.evictAll();
    assert.equal(gate.size, 0);
  });

  it('counts IPv6 addresses by /64 and IPv4-mapped ones as IPv4', () => {
    assert.equal(addressKey('192.0.2.7'), '192.0.2.7');
    assert.equal(addressKey('::ffff:192.0.2.7'), '192.0.2.7');
    assert.equal(addressKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(addressKey('2001:0db8:0001:0002:bbbb:cccc:dddd:eeee'), '2001:db8:1:2::/64');
    assert.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(addressKey('::1'), '0:0:0:0::/64');
    assert.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
    assert.equal(addressKey('unknown'), 'unknown');
    // Login limits count IPv4 by /24 and IPv6 by /64, mapped IPv4 as IPv4.
    assert.equal(addressBlock('192.0.2.7'), '192.0.2.0/24');
    assert.equal(addressBlock('::ffff:192.0.2.7'), '192.0.2.0/24');
    assert.equal(addressBlock('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  });
});

describe('log limiter', () => {
  it('logs the first event of a window and sums the rest up in one line', () => {
    const lines: { fields: Record<string, unknown>; msg: string }[] = [];
    const log = {
      warn: (fields: Record<string, unknown>, msg: string) => lines.push({ fields, msg }),
    } as unknown as Logger;
    const clock = { now: 0 };
    const limiter = new LogLimiter(log, 'refused', 10_000, () => clock.now);
    limiter.warn({ peer: 'a' });
    for (let i = 0; i < 500; i++) limiter.warn({ peer: 'b' });
    assert.equal(lines.length, 1);
    assert.deepEqual(lines[0], { fields: { peer: 'a' }, msg: 'refused' });
    clock.now = 10_000;
    limiter.flush();
    assert.deepEqual(lines[1], { fields: { repeated: 500, windowMs: 10_000 }, msg: 'refused' });
    // A new event inside the window that the summary opened waits for the next summary.
    clock.now = 15_000;
    limiter.warn({ peer: 'c' });
    assert.equal(lines.length, 2);
    limiter.flush();
    assert.equal(lines[2]?.fields.repeated, 1);
    // After a quiet window, the next event is logged at once again.
    clock.now = 40_000;
    limiter.warn({ peer: 'd' });
    assert.deepEqual(lines[3], { fields: { peer: 'd' }, msg: 'refused' });
    limiter.flush();
    assert.equal(lines.length, 4);
  });
});
