import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CACHE_VERSION,
  diffIncludes,
  diffKeyInputs,
  directKeyInputs,
  encodeKeyInputs,
  keyOf,
  type KeyContext,
} from '../../src/cli/cc/cache-key.js';
import { classify, type Compile } from '../../src/cli/cc/classify.js';

function job(command: string): Compile {
  const [compiler = '', ...args] = command.split(' ');
  const c = classify({
    compiler,
    args,
    cwd: '/home/u/lua',
    env: {},
    readResponseFile: () => null,
    exists: () => false,
  });
  assert.equal(c.kind, 'compile', command);
  return c;
}

const LUA = 'gcc -std=gnu99 -O2 -Wall -DLUA_USE_LINUX -I. -c -o lapi.o lapi.c';

function ctx(command = LUA, extra: Partial<KeyContext> = {}): KeyContext {
  return {
    toolchainId: 'tc-1',
    job: job(command),
    cwd: '/home/u/lua',
    env: { LANG: 'C.UTF-8', PATH: '/usr/bin' },
    stderrIsTty: false,
    systemHeaders: null,
    ...extra,
  };
}

const D = (c: KeyContext, source = 'src-sha'): string => keyOf(directKeyInputs(c, source));

describe('cache keys', () => {
  it('start with the cache version and are hex sha256', () => {
    const inputs = directKeyInputs(ctx(), 'src-sha');
    assert.deepEqual(inputs[0], { name: 'version', value: CACHE_VERSION });
    assert.match(keyOf(inputs), /^[0-9a-f]{64}$/);
    assert.ok(encodeKeyInputs(inputs).includes(Buffer.from(CACHE_VERSION)));
    // Entries made before the key had one kind stay found: the component is still there.
    assert.deepEqual(inputs[1], { name: 'kind', value: 'direct' });
  });

  it('do not depend on where the outputs go', () => {
    const base = ctx();
    for (const other of [
      'gcc -std=gnu99 -O2 -Wall -DLUA_USE_LINUX -I. -c -o /tmp/elsewhere.o lapi.c',
      'gcc -std=gnu99 -O2 -Wall -DLUA_USE_LINUX -I. -c lapi.c',
      'gcc -std=gnu99 -O2 -Wall -DLUA_USE_LINUX -I. -c -olapi.o lapi.c',
    ]) {
      assert.equal(D(ctx(other)), D(base), other);
    }
    // The depfile's path is an output too; its target is not.
    const a = ctx('gcc -MD -MF a.d -MT x.o -c lapi.c -o x.o');
    const b = ctx('gcc -MD -MF elsewhere/b.d -MT x.o -c lapi.c -o y.o');
    assert.equal(D(a), D(b));
    assert.notEqual(D(ctx('gcc -MD -c lapi.c -o x.o')), D(ctx('gcc -MD -c lapi.c -o y.o')));
    assert.notEqual(D(ctx('gcc -MD -c lapi.c')), D(ctx('gcc -MMD -c lapi.c')));
    assert.notEqual(D(ctx('gcc -MD -c lapi.c')), D(ctx('gcc -MD -MP -c lapi.c')));
    assert.notEqual(D(ctx('gcc -MD -c lapi.c')), D(ctx('gcc -c lapi.c')));
  });

  it('change with every component', () => {
    const base = ctx();
    const changed: [string, KeyContext][] = [
      ['toolchain', { ...base, toolchainId: 'tc-2' }],
      ['an argument', ctx(LUA.replace('-O2', '-O3'))],
      ['a macro', ctx(LUA.replace('-DLUA_USE_LINUX', '-DLUA_USE_POSIX'))],
      ['argument order', ctx('gcc -O2 -std=gnu99 -Wall -DLUA_USE_LINUX -I. -c -o lapi.o lapi.c')],
      ['the language', ctx(LUA.replace('-c', '-x c++ -c'))],
      ['the source path', ctx(LUA.replace(' lapi.c', ' ./lapi.c'))],
      ['LANG', { ...base, env: { LANG: 'de_DE.UTF-8' } }],
      ['SOURCE_DATE_EPOCH', { ...base, env: { ...base.env, SOURCE_DATE_EPOCH: '1' } }],
      ['TZ', { ...base, env: { ...base.env, TZ: 'UTC' } }],
      ['a terminal', { ...base, stderrIsTty: true }],
      ['GCC_COLORS', { ...base, env: { ...base.env, GCC_COLORS: '' } }],
      ['a colour option', ctx(LUA.replace('-Wall', '-Wall -fdiagnostics-color=always'))],
    ];
    for (const [what, other] of changed) {
      assert.notEqual(D(other), D(base), `direct: ${what}`);
    }
    assert.notEqual(D(base, 'other-src'), D(base));
    // Variables that are not keyed do not matter.
    assert.equal(D({ ...base, env: { ...base.env, PATH: '/opt/bin', HOME: '/x' } }), D(base));
    // COLUMNS matters only on a terminal.
    assert.equal(D({ ...base, env: { ...base.env, COLUMNS: '80' } }), D(base));
    const tty = { ...base, stderrIsTty: true };
    assert.notEqual(D({ ...tty, env: { ...tty.env, COLUMNS: '80' } }), D(tty));
  });

  it('key what only the preprocessor reads', () => {
    const base = ctx();
    const cppOnly: [string, KeyContext][] = [
      ['an include dir', ctx(LUA.replace('-I.', '-I./src'))],
      ['a forced include', ctx(LUA.replace('-I.', '-I. -include config.h'))],
      ['CPATH', { ...base, env: { ...base.env, CPATH: '/opt/include' } }],
      ['system headers', { ...base, systemHeaders: 'fingerprint' }],
    ];
    for (const [what, other] of cppOnly) assert.notEqual(D(other), D(base), what);
  });

  it('key the working directory only with debug information, after the prefix maps', () => {
    const plain = ctx();
    assert.equal(D({ ...plain, cwd: '/elsewhere' }), D(plain));
    const g = ctx(LUA.replace('-O2', '-O2 -g'));
    assert.notEqual(D({ ...g, cwd: '/elsewhere' }), D(g));
    const mapped = (cwd: string): KeyContext =>
      ctx(LUA.replace('-O2', `-O2 -g -fdebug-prefix-map=${cwd}=/src/lua`), { cwd });
    const one = directKeyInputs(mapped('/home/a/lua'), 's');
    const two = directKeyInputs(mapped('/home/b/lua'), 's');
    assert.deepEqual(
      one.find((c) => c.name === 'cwd'),
      { name: 'cwd', value: '/src/lua' },
    );
    assert.deepEqual(
      diffKeyInputs(one, two).map((d) => d.name),
      ['args'],
      'only the map option itself differs',
    );
  });

  it('encode unambiguously', () => {
    const a = encodeKeyInputs([{ name: 'args', value: ['ab', 'c'] }]);
    const b = encodeKeyInputs([{ name: 'args', value: ['a', 'bc'] }]);
    const c = encodeKeyInputs([{ name: 'args', value: 'abc' }]);
    const d = encodeKeyInputs([{ name: 'arg', value: ['sabc'] }]);
    assert.equal(new Set([a, b, c, d].map((x) => x.toString('hex'))).size, 4);
    assert.notEqual(keyOf([{ name: 'x', value: [] }]), keyOf([{ name: 'x', value: '' }]));
  });
});

describe('explaining a miss', () => {
  it('names the components that differ', () => {
    const before = directKeyInputs(ctx(), 'src-1');
    const after = directKeyInputs(
      ctx(LUA.replace('-O2', '-O3 -g'), { toolchainId: 'tc-2', cwd: '/home/u/lua' }),
      'src-2',
    );
    assert.deepEqual(diffKeyInputs(before, after), [
      { name: 'toolchain', change: 'changed', before: 'tc-1', after: 'tc-2' },
      { name: 'args', change: 'list', added: ['-O3', '-g'], removed: ['-O2'], reordered: false },
      { name: 'cwd', change: 'changed', before: '', after: '/home/u/lua' },
      { name: 'source', change: 'changed', before: 'src-1', after: 'src-2' },
    ]);
    assert.deepEqual(diffKeyInputs(before, before), []);
    const reordered = diffKeyInputs(
      [{ name: 'args', value: ['-a', '-b'] }],
      [{ name: 'args', value: ['-b', '-a'] }],
    );
    assert.deepEqual(reordered, [
      { name: 'args', change: 'list', added: [], removed: [], reordered: true },
    ]);
    assert.deepEqual(diffKeyInputs([{ name: 'x', value: 'v' }], []), [
      { name: 'x', change: 'removed', value: 'v' },
    ]);
  });

  it('names the headers that changed', () => {
    const now: Record<string, string> = { 'lobject.h': 'new', 'lua.h': 'same' };
    assert.deepEqual(
      diffIncludes(
        [
          ['lua.h', 'same'],
          ['lobject.h', 'old'],
          ['gone.h', 'x'],
        ],
        (p) => now[p] ?? null,
      ),
      [
        { path: 'lobject.h', before: 'old', after: 'new' },
        { path: 'gone.h', before: 'x', after: null },
      ],
    );
  });
});
