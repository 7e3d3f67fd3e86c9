/**
 * The key of a `cache: true` plan task (scheduler/task-cache-key.ts): the same for the same
 * work whatever the order things were written in, different when anything that decides the
 * outputs differs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  canonicalJson,
  taskCacheKey,
  type TaskCacheKeyParts,
} from '../../src/coordinator/scheduler/task-cache-key.js';

const sha = (c: string): string => c.repeat(64);

function parts(): TaskCacheKeyParts {
  return {
    hostFiles: [
      { path: 'package.json', sha256: sha('8'), mode: 0o644 },
      { path: 'host/main.js', sha256: sha('9'), mode: 0o644 },
    ],
    extension: 'core',
    extensionFiles: [
      { path: 'index.js', sha256: sha('a'), mode: 0o644 },
      { path: 'run.js', sha256: sha('b'), mode: 0o644 },
    ],
    operation: 'run',
    input: { command: 'cc -c a.c', opts: { x: 1, y: [1, 2] } },
    env: { CFLAGS: '-O2', LANG: 'C' },
    inputs: [
      { path: 'a.c', sha256: sha('c'), mode: 0o644 },
      { path: 'inc/a.h', sha256: sha('d'), mode: 0o644 },
    ],
    outputs: ['a.o', '*.d'],
    requires: ['linux', 'gcc'],
  };
}

describe('task cache key', () => {
  it('is a sha256 hex and the same for the same parts', () => {
    const key = taskCacheKey(parts());
    assert.match(key, /^[0-9a-f]{64}$/);
    assert.equal(taskCacheKey(parts()), key);
  });

  it('does not depend on the order of keys, files, outputs, labels or duplicates', () => {
    const p = parts();
    const reordered: TaskCacheKeyParts = {
      ...p,
      hostFiles: [...p.hostFiles].reverse(),
      extensionFiles: [...p.extensionFiles].reverse(),
      input: { opts: { y: [1, 2], x: 1 }, command: 'cc -c a.c' },
      env: { LANG: 'C', CFLAGS: '-O2' },
      inputs: [...p.inputs].reverse(),
      outputs: ['*.d', 'a.o', 'a.o'],
      requires: ['gcc', 'linux'],
    };
    assert.equal(taskCacheKey(reordered), taskCacheKey(p));
  });

  it('changes with every part that decides the outputs', () => {
    const base = taskCacheKey(parts());
    const variants: [string, (p: TaskCacheKeyParts) => TaskCacheKeyParts][] = [
      [
        'a host runtime file',
        (p) => ({ ...p, hostFiles: [p.hostFiles[0]!, { ...p.hostFiles[1]!, sha256: sha('7') }] }),
      ],
      [
        'a host runtime file added',
        (p) => ({
          ...p,
          hostFiles: [...p.hostFiles, { path: 'host/run.js', sha256: sha('6'), mode: 0o644 }],
        }),
      ],
      ['extension', (p) => ({ ...p, extension: 'other' })],
      [
        'an extension file',
        (p) => ({
          ...p,
          extensionFiles: [p.extensionFiles[0]!, { ...p.extensionFiles[1]!, sha256: sha('e') }],
        }),
      ],
      ['operation', (p) => ({ ...p, operation: 'build' })],
      ['input', (p) => ({ ...p, input: { command: 'cc -c -O3 a.c' } })],
      [
        'input array order',
        (p) => ({ ...p, input: { command: 'cc -c a.c', opts: { x: 1, y: [2, 1] } } }),
      ],
      ['no input', (p) => ({ ...p, input: undefined })],
      ['env value', (p) => ({ ...p, env: { ...p.env, CFLAGS: '-O3' } })],
      ['env added', (p) => ({ ...p, env: { ...p.env, TZ: 'UTC' } })],
      [
        'input content',
        (p) => ({ ...p, inputs: [{ ...p.inputs[0]!, sha256: sha('f') }, p.inputs[1]!] }),
      ],
      ['input mode', (p) => ({ ...p, inputs: [{ ...p.inputs[0]!, mode: 0o755 }, p.inputs[1]!] })],
      ['input path', (p) => ({ ...p, inputs: [{ ...p.inputs[0]!, path: 'b.c' }, p.inputs[1]!] })],
      ['input removed', (p) => ({ ...p, inputs: [p.inputs[0]!] })],
      ['outputs', (p) => ({ ...p, outputs: ['a.o'] })],
      ['requires', (p) => ({ ...p, requires: ['linux'] })],
    ];
    const seen = new Set([base]);
    for (const [what, change] of variants) {
      const key = taskCacheKey(change(parts()));
      assert.notEqual(key, base, what);
      assert.ok(!seen.has(key), `${what} collides with another variant`);
      seen.add(key);
    }
  });

  it('covers the host runtime: a new one changes the key, the same one keeps it', () => {
    const base = taskCacheKey(parts());
    const sameHost = parts().hostFiles.map((f) => ({ ...f }));
    assert.equal(taskCacheKey({ ...parts(), hostFiles: sameHost }), base);
    const newHost = sameHost.map((f) =>
      f.path === 'host/main.js' ? { ...f, sha256: sha('5') } : f,
    );
    assert.notEqual(taskCacheKey({ ...parts(), hostFiles: newHost }), base);
    // A host file is not an extension file of the same path and content.
    const moved: TaskCacheKeyParts = {
      ...parts(),
      hostFiles: [],
      extensionFiles: [...parts().extensionFiles, ...parts().hostFiles],
    };
    assert.notEqual(taskCacheKey(moved), base);
  });

  it('reads a JSON value canonically', () => {
    assert.equal(
      canonicalJson({ b: [1, { d: 'x', c: null }], a: true }),
      '{"a":true,"b":[1,{"c":null,"d":"x"}]}',
    );
    assert.equal(canonicalJson(undefined), 'null');
    assert.equal(canonicalJson({ a: undefined, b: 1 }), '{"b":1}');
    assert.notEqual(canonicalJson('1'), canonicalJson(1));
  });
});
