import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  agentProof,
  clientProof,
  negotiateProtocol,
  newNonce,
  proofsEqual,
} from '../../src/protocol/handshake.js';

describe('handshake', () => {
  it('negotiates the highest common version, or none', () => {
    assert.equal(negotiateProtocol({ min: 1, max: 3 }, { min: 2, max: 5 }), 3);
    assert.equal(negotiateProtocol({ min: 1, max: 1 }, { min: 1, max: 1 }), 1);
    assert.equal(negotiateProtocol({ min: 4, max: 9 }, { min: 1, max: 3 }), undefined);
  });

  it('binds proofs to the key, both nonces, the role and the channel', () => {
    const [c, a] = [newNonce(), newNonce()];
    const proof = clientProof('key-1234567890abcdef', c, a, 'tls');
    assert.ok(proofsEqual(proof, clientProof('key-1234567890abcdef', c, a, 'tls')));
    assert.ok(!proofsEqual(proof, clientProof('key-0000000000000000', c, a, 'tls')), 'other key');
    assert.ok(
      !proofsEqual(proof, clientProof('key-1234567890abcdef', newNonce(), a, 'tls')),
      'other nonce',
    );
    assert.ok(
      !proofsEqual(proof, clientProof('key-1234567890abcdef', c, a, 'other')),
      'other channel',
    );
    assert.ok(
      !proofsEqual(proof, agentProof('key-1234567890abcdef', c, a, 'tls')),
      'a reflected proof',
    );
    assert.ok(!proofsEqual(proof, ''), 'empty');
  });
});
