import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  classify,
  preprocessArgv,
  type Classification,
  type Compile,
} from '../../src/cli/cc/classify.js';
import { optionTable, readOption } from '../../src/cli/cc/options.js';
import { compilerName } from '../../src/cli/cc/languages.js';
import { cc1Args, runGcc } from '../helpers/gcc.js';

interface Fs {
  files?: Record<string, string>;
  exists?: string[];
  env?: Record<string, string>;
}

const CWD = '/w';

/** Classifies a command line written as words separated by single spaces (or given as words). */
function cls(command: string | string[], fs: Fs = {}): Classification {
  const words = typeof command === 'string' ? command.split(' ') : command;
  const [compiler = '', ...args] = words;
  const files = fs.files ?? {};
  return classify({
    compiler,
    args,
    cwd: CWD,
    env: fs.env ?? {},
    readResponseFile: (path) => {
      const text = files[path];
      return text === undefined ? null : Buffer.from(text);
    },
    exists: (path) => (fs.exists ?? []).includes(path),
  });
}

function compile(command: string | string[], fs: Fs = {}): Compile {
  const c = cls(command, fs);
  assert.equal(c.kind, 'compile', `expected a compile: ${JSON.stringify(c)}`);
  return c;
}

describe('cc option table', () => {
  it('is sorted and lists each option once', () => {
    const names = optionTable.map((o) => o.name);
    assert.deepEqual(names, [...names].sort());
    assert.equal(new Set(names).size, names.length);
  });

  it('reads options in their glued and separate forms, longest name first', () => {
    const cases: [string[], string | null, string | undefined, number][] = [
      [['-DX=1'], '-D', 'X=1', 1],
      [['-D', 'X=1'], '-D', 'X=1', 2],
      [['-ofoo.o'], '-o', 'foo.o', 1],
      [['-include', 'a.h'], '-include', 'a.h', 2],
      [['-includea.h'], '-include', 'a.h', 1],
      [['-include-pch', 'a.pch'], '-include-pch', 'a.pch', 2],
      [['-isystem/usr/x'], '-isystem', '/usr/x', 1],
      [['-iwithprefixbeforefoo'], '-iwithprefixbefore', 'foo', 1],
      [['-MFdeps.d'], '-MF', 'deps.d', 1],
      [['-MD'], '-MD', undefined, 1],
      [['-Wp,-MD,x.d'], '-Wp,', '-MD,x.d', 1],
      [['--param=max-inline-insns-single=200'], '--param=', 'max-inline-insns-single=200', 1],
      [['--param', 'x=1'], '--param', 'x=1', 2],
      [['-xc++'], '-x', 'c++', 1],
      [['-undef'], '-undef', undefined, 1],
      [['-fdump-tree-all'], '-fdump-', undefined, 1],
      [['-fprofile-use=dir'], '-fprofile-use', undefined, 1],
      [['-Wall'], null, undefined, 1],
      [['-O2'], null, undefined, 1],
    ];
    for (const [args, name, value, taken] of cases) {
      const o = readOption(args, 0);
      assert.equal(o.spec?.name ?? null, name, args.join(' '));
      assert.equal(o.value === '' ? undefined : o.value, value, args.join(' '));
      assert.equal(o.args.length, taken, args.join(' '));
    }
    assert.equal(readOption(['-o'], 0).missing, true);
  });

  it('knows the compilers by name', () => {
    const cases: [string, string | null, boolean][] = [
      ['gcc', 'gcc', false],
      ['/usr/bin/g++', 'gcc', true],
      ['cc', 'gcc', false],
      ['c++', 'gcc', true],
      ['x86_64-linux-gnu-gcc-12', 'gcc', false],
      ['arm-none-eabi-g++', 'gcc', true],
      ['gcc-12.2', 'gcc', false],
      ['clang', 'clang', false],
      ['clang++-17', 'clang', true],
      ['ccache', null, false],
      ['distcc', null, false],
      ['icc', null, false],
      ['gcc-ar', null, false],
      ['gcc.sh', null, false],
    ];
    for (const [name, family, cxx] of cases) {
      const got = compilerName(name);
      assert.equal(got?.family ?? null, family, name);
      if (got !== null) assert.equal(got.cxxDriver, cxx, name);
    }
  });
});

describe('classify: what is not a compile', () => {
  const cases: [string, string][] = [
    // links: Lua's, autoconf's probes
    ['gcc -std=gnu99 -o lua lua.o liblua.a -lm -Wl,-E -ldl', 'not-a-compile'],
    ['gcc -o conftest -g -O2 conftest.c', 'not-a-compile'],
    ['gcc -E conftest.c', 'not-a-compile'],
    ['gcc -E -dM -x c /dev/null', 'not-a-compile'],
    ['gcc -M foo.c', 'not-a-compile'],
    ['gcc -MM -c foo.c', 'not-a-compile'],
    ['gcc -S -o foo.s foo.c', 'not-a-compile'],
    ['gcc -c -fsyntax-only foo.c', 'not-a-compile'],
    ['gcc --version', 'not-a-compile'],
    ['gcc -v', 'not-a-compile'],
    ['gcc -### -c foo.c', 'not-a-compile'],
    ['gcc -print-prog-name=cc1', 'not-a-compile'],
    ['gcc -dumpmachine', 'not-a-compile'],
    ['gcc -dumpfullversion', 'not-a-compile'],
    ['gcc -c -Wp,-M foo.c', 'not-a-compile'],
    ['gcc -c', 'no-input'],
    ['gcc -c a.c b.c', 'several-inputs'],
    ['gcc -c foo.c bar.o', 'several-inputs'],
    ['gcc -x c -c -', 'stdin-input'],
    ['gcc -c foo.c -o -', 'stdout-output'],
    ['gcc -c foo.s', 'not-c-or-cxx'],
    ['gcc -c -o start.o start.S', 'not-c-or-cxx'],
    ['gcc -c foo.i', 'not-c-or-cxx'],
    ['gcc -c foo.m', 'not-c-or-cxx'],
    ['gcc -c foo.h', 'not-c-or-cxx'],
    ['gcc -x c-header -c foo.h', 'not-c-or-cxx'],
    ['gcc -x assembler-with-cpp -c foo.c', 'not-c-or-cxx'],
    ['gcc -x cpp-output -c foo.c', 'not-c-or-cxx'],
    ['gcc -c foo.c -o', 'missing-argument'],
    ['gcc -c -x', 'missing-argument'],
    ['gcc -c -MF', 'missing-argument'],
    ['ccache gcc -c foo.c', 'unknown-compiler'],
    ['icecc -c foo.c', 'unknown-compiler'],
    ['gcc -c @missing.rsp', 'not-c-or-cxx'],
  ];
  for (const [command, reason] of cases) {
    it(`${command} → ${reason}`, () => {
      const c = cls(command);
      assert.equal(c.kind, 'passthrough');
      assert.equal(c.kind === 'passthrough' ? c.reason : '', reason);
    });
  }
  it('a response file that includes itself is run as written', () => {
    const c = cls('gcc -c @loop.rsp', { files: { '/w/loop.rsp': '-O2 @loop.rsp' } });
    assert.deepEqual(c, {
      kind: 'passthrough',
      reason: 'response-file',
      detail: 'too many response files',
    });
  });
});

describe('classify: compiles', () => {
  it("Lua's compile line", () => {
    const c = compile(
      'gcc -std=gnu99 -O2 -Wall -Wextra -DLUA_COMPAT_5_3 -DLUA_USE_LINUX -c -o lapi.o lapi.c',
    );
    assert.equal(c.language, 'c');
    assert.equal(c.languageExplicit, false);
    assert.equal(c.source, 'lapi.c');
    assert.equal(c.output, 'lapi.o');
    assert.equal(c.outputGiven, true);
    assert.equal(c.depfile, null);
    assert.equal(c.debug, false);
    const flags = ['-std=gnu99', '-O2', '-Wall', '-Wextra', '-DLUA_COMPAT_5_3', '-DLUA_USE_LINUX'];
    assert.deepEqual(c.preprocessArgs, flags);
    assert.deepEqual(c.compileArgs, flags);
    assert.deepEqual(c.keyArgs, flags);
    assert.deepEqual(c.depArgs, []);
    assert.deepEqual(c.localReasons, []);
    assert.deepEqual(c.noCacheReasons, []);
    assert.deepEqual(c.noDirectReasons, []);
    assert.deepEqual(preprocessArgv(c, '/tmp/t.i'), [
      ...flags,
      '-E',
      '-fdirectives-only',
      'lapi.c',
      '-o',
      '/tmp/t.i',
    ]);
  });

  it("re2's C++ compile line: include dirs only reach the preprocessor", () => {
    const c = compile(
      'g++ -c -o obj/re2/prog.o -O3 -g -std=c++17 -pthread -Wall -Wextra -Wno-unused-parameter -I. -DNDEBUG re2/prog.cc',
    );
    assert.equal(c.language, 'c++');
    assert.equal(c.family, 'gcc');
    assert.equal(c.output, 'obj/re2/prog.o');
    assert.equal(c.debug, true);
    assert.ok(c.preprocessArgs.includes('-I.'));
    assert.ok(!c.compileArgs.includes('-I.'));
    assert.ok(c.compileArgs.includes('-DNDEBUG'));
    assert.ok(c.keyArgs.includes('-I.'));
  });

  it("CMake's Makefile generator line: -MD -MT -MF as given", () => {
    const c = compile(
      '/usr/bin/cc -DFOO -I/src/include -O3 -DNDEBUG -MD -MT CMakeFiles/app.dir/src/main.c.o -MF CMakeFiles/app.dir/src/main.c.o.d -o CMakeFiles/app.dir/src/main.c.o -c /src/src/main.c',
    );
    assert.equal(c.source, '/src/src/main.c');
    assert.deepEqual(c.depfile, {
      style: 'MD',
      path: 'CMakeFiles/app.dir/src/main.c.o.d',
      targets: [{ name: 'CMakeFiles/app.dir/src/main.c.o', quoted: false }],
      defaultTarget: 'CMakeFiles/app.dir/src/main.c.o',
      phony: false,
      missingOk: false,
      viaWp: false,
    });
    assert.deepEqual(c.depArgs, [
      '-MD',
      '-MT',
      'CMakeFiles/app.dir/src/main.c.o',
      '-MF',
      'CMakeFiles/app.dir/src/main.c.o.d',
    ]);
    assert.deepEqual(c.compileArgs, ['-DFOO', '-O3', '-DNDEBUG']);
    assert.deepEqual(c.keyArgs, [
      '-DFOO',
      '-I/src/include',
      '-O3',
      '-DNDEBUG',
      '-MD',
      '-MT',
      'CMakeFiles/app.dir/src/main.c.o',
    ]);
  });

  it("the kernel's line: -Wp,-MMD,file, -nostdinc, forced includes", () => {
    const c = compile([
      'gcc',
      '-Wp,-MMD,kernel/.fork.o.d',
      '-nostdinc',
      '-I./arch/x86/include',
      '-I./include',
      '-include',
      './include/linux/kconfig.h',
      '-D__KERNEL__',
      '-fno-strict-aliasing',
      '-O2',
      '-DKBUILD_MODFILE="kernel/fork"',
      '-DKBUILD_BASENAME="fork"',
      '-c',
      '-o',
      'kernel/fork.o',
      'kernel/fork.c',
    ]);
    assert.equal(c.depfile?.path, 'kernel/.fork.o.d');
    assert.equal(c.depfile?.style, 'MMD');
    assert.equal(c.depfile?.viaWp, true);
    assert.equal(c.depfile?.defaultTarget, 'fork.o');
    assert.deepEqual(c.depArgs, ['-Wp,-MMD,kernel/.fork.o.d']);
    assert.deepEqual(c.compileArgs, [
      '-D__KERNEL__',
      '-fno-strict-aliasing',
      '-O2',
      '-DKBUILD_MODFILE="kernel/fork"',
      '-DKBUILD_BASENAME="fork"',
    ]);
    assert.deepEqual(c.noDirectReasons, []);
    assert.deepEqual(c.localReasons, []);
  });

  const depCases: [string, { path: string; target: string; depArgs: string[] }][] = [
    [
      'gcc -MD -c -o sub/h.o h.c',
      { path: 'sub/h.d', target: 'sub/h.o', depArgs: ['-MD', '-MF', 'sub/h.d', '-MQ', 'sub/h.o'] },
    ],
    ['gcc -MD -c h.c', { path: 'h.d', target: 'h.o', depArgs: ['-MD', '-MF', 'h.d'] }],
    ['gcc -MD -c src/x.y.c', { path: 'x.y.d', target: 'x.y.o', depArgs: ['-MD', '-MF', 'x.y.d'] }],
    [
      'gcc -MMD -MP -c c.c -o x/y.obj',
      {
        path: 'x/y.d',
        target: 'x/y.obj',
        depArgs: ['-MMD', '-MP', '-MF', 'x/y.d', '-MQ', 'x/y.obj'],
      },
    ],
    [
      'gcc -MD -c c.c -o sub.dir/h',
      {
        path: 'sub.dir/h.d',
        target: 'sub.dir/h',
        depArgs: ['-MD', '-MF', 'sub.dir/h.d', '-MQ', 'sub.dir/h'],
      },
    ],
    [
      'gcc -MD -c c.c -o .hidden',
      { path: '.d', target: '.hidden', depArgs: ['-MD', '-MF', '.d', '-MQ', '.hidden'] },
    ],
    [
      'gcc -MD -MFdd -c c.c -o o.o',
      { path: 'dd', target: 'o.o', depArgs: ['-MD', '-MFdd', '-MQ', 'o.o'] },
    ],
    [
      'gcc -Wp,-MD,.c.d -c c.c -o out/c.o',
      { path: '.c.d', target: 'c.o', depArgs: ['-Wp,-MD,.c.d'] },
    ],
  ];
  for (const [command, want] of depCases) {
    it(`depfile of ${command}`, () => {
      const c = compile(command);
      assert.equal(c.depfile?.path, want.path);
      assert.equal(c.depfile?.defaultTarget, want.target);
      assert.deepEqual(c.depArgs, want.depArgs);
    });
  }

  it('-o glued, -x positional, g++ and .C', () => {
    assert.equal(compile('gcc -c -ofoo.o foo.c').output, 'foo.o');
    assert.equal(compile('gcc -c dir/foo.c').output, 'foo.o');
    const x = compile('gcc -x c++ -c foo.c');
    assert.equal(x.language, 'c++');
    assert.equal(x.languageExplicit, true);
    assert.deepEqual(preprocessArgv(x, 't').slice(-5), ['-x', 'c++', 'foo.c', '-o', 't']);
    assert.ok(!x.preprocessArgs.includes('-x'));
    assert.equal(compile('gcc -c foo.c -x c++').language, 'c');
    assert.equal(compile('gcc -x c++ -x none -c foo.c').language, 'c');
    assert.equal(compile('gcc -xc++ -c foo.c').language, 'c++');
    assert.equal(compile('g++ -c foo.c').language, 'c++');
    assert.equal(compile('g++ -c foo.c').languageExplicit, false);
    assert.equal(compile('gcc -c foo.C').language, 'c++');
    assert.equal(compile('gcc -c foo.c++').language, 'c++');
    assert.equal(compile('gcc -c foo.CPP').language, 'c++');
    assert.equal(cls('gcc -c foo.Cpp').kind, 'passthrough');
    assert.equal(compile('gcc -x c -c foo.txt').language, 'c');
  });

  const localCases: [string, string, boolean][] = [
    // [command, reason, still cached]
    ['gcc -march=native -O2 -c foo.c', 'native-cpu', false],
    ['gcc -mtune=native -c foo.c', 'native-cpu', false],
    ['gcc -fprofile-generate -c foo.c', 'profiling', false],
    ['gcc -fprofile-use=prof -c foo.c', 'profiling', false],
    ['gcc --coverage -c foo.c', 'profiling', false],
    ['gcc -fprofile-arcs -ftest-coverage -c foo.c', 'profiling', false],
    ['gcc -save-temps=obj -c foo.c', 'extra-output', false],
    ['gcc -fdump-tree-all -c foo.c', 'extra-output', false],
    ['gcc -fstack-usage -c foo.c', 'extra-output', false],
    ['gcc -aux-info foo.aux -c foo.c', 'extra-output', false],
    ['gcc -dA -c foo.c', 'extra-output', false],
    ['gcc -gsplit-dwarf -g -c foo.c', 'split-dwarf', false],
    ['gcc -g3 -c foo.c', 'debug-macros', true],
    ['gcc -ggdb3 -O0 -c foo.c', 'debug-macros', true],
    ['gcc -flto -O2 -c foo.c', 'records-command-line', true],
    ['gcc -flto=auto -c foo.c', 'records-command-line', true],
    ['gcc -frecord-gcc-switches -c foo.c', 'records-command-line', true],
    ['gcc -B/opt/bin/ -c foo.c', 'user-programs', false],
    ['gcc -specs=my.specs -c foo.c', 'user-programs', false],
    ['gcc -fplugin=./p.so -c foo.c', 'user-programs', false],
    ['gcc -wrapper gdb,--args -c foo.c', 'user-programs', false],
    ['gcc -Wa,-adhln=foo.lst -c foo.c', 'assembler-files', false],
    ['gcc -Wa,--MD,foo.d -c foo.c', 'assembler-files', false],
    ['gcc -Xassembler -alh -c foo.c', 'assembler-files', false],
    ['gcc -include-pch foo.pch -c foo.c', 'precompiled-header', false],
    ['gcc -imacros m.h -c foo.c', 'precompiled-header', true],
    ['g++ -fmodules-ts -c foo.cc', 'cxx-modules', false],
    ['gcc -Xpreprocessor -DX -c foo.c', 'preprocessor-mode', false],
    ['gcc -Wp,-DX,-I,inc -c foo.c', 'preprocessor-mode', true],
    ['gcc -P -c foo.c', 'preprocessor-mode', true],
    ['gcc -traditional-cpp -c foo.c', 'preprocessor-mode', true],
    ['gcc --output=foo.o -c foo.c', 'unsupported-option', false],
    ['gcc -c -g -O2 conftest.c', 'autoconf-probe', false],
    ['clang -O2 -c foo.c', 'clang-unverified', true],
    ['clang -arch x86_64 -arch arm64 -c foo.c', 'several-arch', true],
  ];
  for (const [command, reason, cached] of localCases) {
    it(`${command} runs locally (${reason})${cached ? '' : ', not cached'}`, () => {
      const c = compile(command);
      assert.ok(c.localReasons.includes(reason as never), JSON.stringify(c.localReasons));
      assert.equal(c.noCacheReasons.length === 0, cached, JSON.stringify(c.noCacheReasons));
    });
  }

  it('fine remote: usual flags, -Wa, options that read no file, colour, prefix maps', () => {
    for (const command of [
      'gcc -O2 -g -fPIC -fno-omit-frame-pointer -Wa,--noexecstack -c foo.c',
      'gcc -fdiagnostics-color=always -Werror=format -pedantic -std=c11 -c foo.c',
      'gcc --param max-inline-insns-single=200 -c foo.c',
      'gcc -Wp,-DX=1,-UY -c foo.c',
      'gcc -mavx2 -march=x86-64-v3 -c foo.c',
      'gcc -include config.h -c foo.c',
      'g++ -fexceptions -frtti -std=gnu++17 -c foo.cc',
    ]) {
      const c = compile(command);
      assert.deepEqual(c.localReasons, [], command);
      assert.deepEqual(c.noCacheReasons, [], command);
    }
    assert.deepEqual(compile('gcc -Wp,-DX=1,-UY -c foo.c').compileArgs, ['-Wp,-DX=1,-UY']);
    const maps = compile(
      'gcc -g -fdebug-prefix-map=/a=/b -ffile-prefix-map=/c=. -fmacro-prefix-map=/d=/e -c foo.c',
    );
    assert.deepEqual(maps.prefixMaps, [
      { kind: 'debug', from: '/a', to: '/b' },
      { kind: 'file', from: '/c', to: '.' },
      { kind: 'macro', from: '/d', to: '/e' },
    ]);
  });

  it('-include of a header with a precompiled twin runs locally', () => {
    assert.deepEqual(compile('gcc -include pch.h -c foo.c').localReasons, []);
    const c = compile('gcc -include pch.h -c foo.c', { exists: ['/w/pch.h.gch'] });
    assert.deepEqual(c.localReasons, ['precompiled-header']);
  });

  it('an environment that changes what gcc runs or writes', () => {
    const sunpro = compile('gcc -c foo.c', { env: { SUNPRO_DEPENDENCIES: 'x.d foo.o' } });
    assert.deepEqual(sunpro.localReasons, ['environment']);
    assert.deepEqual(sunpro.noCacheReasons, ['environment: SUNPRO_DEPENDENCIES']);
    const prefix = compile('gcc -c foo.c', { env: { GCC_EXEC_PREFIX: '/opt/' } });
    assert.deepEqual(prefix.localReasons, ['environment']);
    assert.deepEqual(prefix.noCacheReasons, []);
    assert.deepEqual(compile('gcc -c foo.c', { env: { LD_PRELOAD: '' } }).localReasons, []);
  });

  it('debug information on and off, last one wins', () => {
    assert.equal(compile('gcc -g -c foo.c').debug, true);
    assert.equal(compile('gcc -ggdb -c foo.c').debug, true);
    assert.equal(compile('gcc -gdwarf-4 -c foo.c').debug, true);
    assert.equal(compile('gcc -g -g0 -c foo.c').debug, false);
    assert.equal(compile('gcc -g0 -g2 -c foo.c').debug, true);
    assert.equal(compile('gcc -gz -c foo.c').debug, false);
  });

  it('response files: quotes, backslashes, nesting, relative to the cwd', () => {
    const c = compile('gcc @flags.rsp', {
      files: {
        '/w/flags.rsp': `-c -o "out dir/x.o" 'my file.c' @inc/more.rsp`,
        '/w/inc/more.rsp': '-DA=a\\ b\n-DQ="\\"q\\""\r\n',
      },
    });
    assert.deepEqual(c.args, ['-c', '-o', 'out dir/x.o', 'my file.c', '-DA=a b', '-DQ="q"']);
    assert.deepEqual(c.responseFiles, ['flags.rsp', 'inc/more.rsp']);
    assert.equal(c.source, 'my file.c');
    assert.equal(c.output, 'out dir/x.o');
  });
});

describe('classify against gcc -###', () => {
  const dir = mkdtempSync(join(tmpdir(), 'muster-cc-options-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'sub'));
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'h.c'), '#include "h.h"\nint main(void) { return H; }\n');
  writeFileSync(join(dir, 'h.h'), '#define H 0\n');
  writeFileSync(join(dir, 'src', 'x.y.c'), 'int x;\n');

  /** What of cc1's arguments decides the depfile: its path and the targets, in order. */
  function depEffect(cc1: string[]): { file: string | null; targets: string[]; flags: string[] } {
    let file: string | null = null;
    let mf: string | null = null;
    const targets: string[] = [];
    const flags: string[] = [];
    for (let i = 0; i < cc1.length; i++) {
      const a = cc1[i] ?? '';
      if (a === '-MD' || a === '-MMD') {
        file = cc1[i + 1] ?? null;
        flags.push(a);
        i++;
      } else if (a === '-MF') mf = cc1[++i] ?? null;
      else if (a === '-MQ' || a === '-MT') targets.push(`${a} ${cc1[++i] ?? ''}`);
      else if (a === '-MP' || a === '-MG') flags.push(a);
    }
    return { file: mf ?? file, targets, flags };
  }

  const commands = [
    'gcc -MD -c -o sub/h.o h.c',
    'gcc -MD -c h.c',
    'gcc -MD -c src/x.y.c',
    'gcc -MMD -MP -c h.c -o sub/y.obj',
    'gcc -MD -c h.c -o sub.dir/h',
    'gcc -MD -MF dd -c h.c -o o.o',
    'gcc -MD -MFdd -c h.c -o o.o',
    'gcc -MMD -MF a.d -MT t1 -MQ t$2 -c h.c -o q.o',
    'gcc -Wp,-MD,.h.d -c h.c -o sub/h.o',
    'gcc -Wp,-MMD,sub/.h.o.d -c h.c',
    'g++ -x c++ -MD -c h.c -o sub/h.o',
  ];
  for (const command of commands) {
    it(`the -E pass of "${command}" writes the compile's depfile`, () => {
      const c = compile(command);
      const compiler = command.startsWith('g++') ? 'g++' : 'gcc';
      const real = cc1Args(command.split(' ').slice(1), dir, compiler);
      const pass = cc1Args(preprocessArgv(c, '/tmp/muster-pass.i'), dir, compiler);
      assert.ok(pass.includes('-E') && pass.includes('-fdirectives-only'));
      assert.deepEqual(depEffect(pass), depEffect(real));
      assert.equal(depEffect(real).file, c.depfile?.path);
    });
  }

  it('the -E pass writes a depfile byte-identical to the compile', () => {
    for (const command of [
      'gcc -MD -c -o sub/h.o h.c',
      'gcc -MMD -MP -c h.c -o sub/y.obj',
      'gcc -Wp,-MD,sub/.w.d -c h.c -o sub/w.o',
      'gcc -MD -c h.c',
    ]) {
      const c = compile(command);
      const depfile = join(dir, c.depfile?.path ?? 'none');
      runGcc(command.split(' ').slice(1), dir);
      const fromCompile = readFileSync(depfile);
      rmSync(depfile);
      runGcc(preprocessArgv(c, join(dir, 'pass.i')), dir);
      assert.deepEqual(readFileSync(depfile), fromCompile, command);
    }
  });
});

/** A one-line picture of a classification, for the corpus below. */
function summary(c: Classification): string {
  if (c.kind === 'passthrough') return `pass ${c.reason}`;
  const parts = [`${c.language} ${c.source} -> ${c.output}`];
  if (c.depfile !== null) {
    const targets = c.depfile.targets.map((t) => t.name).join(',') || c.depfile.defaultTarget;
    parts.push(`dep ${c.depfile.style} ${c.depfile.path} ${targets}`);
  }
  if (c.localReasons.length > 0) parts.push(`local ${c.localReasons.join(',')}`);
  if (c.noCacheReasons.length > 0) parts.push('nocache');
  if (c.noDirectReasons.length > 0) parts.push('nodirect');
  return parts.join('; ');
}

describe('classify: command lines of real builds', () => {
  // [command line as make's shell passes it (words split on single spaces), summary, files]
  const corpus: [string, string, Fs?][] = [
    // Lua 5.4
    [
      'gcc -std=gnu99 -O2 -Wall -Wextra -DLUA_COMPAT_5_3 -DLUA_USE_LINUX -c -o lvm.o lvm.c',
      'c lvm.c -> lvm.o',
    ],
    ['gcc -std=gnu99 -o lua lua.o liblua.a -lm -Wl,-E -ldl', 'pass not-a-compile'],
    ['ar rcu liblua.a lapi.o lcode.o', 'pass unknown-compiler'],
    // re2's own Makefile
    [
      'g++ -c -o obj/re2/bitstate.o -O3 -g -std=c++17 -pthread -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -I. -DNDEBUG re2/bitstate.cc',
      'c++ re2/bitstate.cc -> obj/re2/bitstate.o',
    ],
    [
      'g++ -c -o obj/so/re2/re2.o -fPIC -O3 -g -std=c++17 -pthread -I. -DNDEBUG re2/re2.cc',
      'c++ re2/re2.cc -> obj/so/re2/re2.o',
    ],
    [
      'g++ -o obj/test/regexp_test obj/re2/testing/regexp_test.o obj/libre2.a -pthread',
      'pass not-a-compile',
    ],
    // automake's depcomp (gcc3 mode), libtool
    [
      'gcc -DHAVE_CONFIG_H -I. -I.. -g -O2 -MT foo.o -MD -MP -MF .deps/foo.Tpo -c -o foo.o foo.c',
      'c foo.c -> foo.o; dep MD .deps/foo.Tpo foo.o',
    ],
    [
      'gcc -DHAVE_CONFIG_H -I. -I../include -g -O2 -MT libcurl_la-easy.lo -MD -MP -MF .deps/libcurl_la-easy.Tpo -c easy.c -fPIC -DPIC -o .libs/libcurl_la-easy.o',
      'c easy.c -> .libs/libcurl_la-easy.o; dep MD .deps/libcurl_la-easy.Tpo libcurl_la-easy.lo',
    ],
    [
      'gcc -shared -fPIC -DPIC .libs/a.o -Wl,-soname -Wl,liba.so.1 -o .libs/liba.so.1.0.0',
      'pass not-a-compile',
    ],
    // git
    [
      'cc -o abspath.o -c -MF ./.depend/abspath.o.d -MQ abspath.o -MMD -MP -g -O2 -Wall -I. -DHAVE_SYSINFO -DGIT_HOST_CPU="x86_64" abspath.c',
      'c abspath.c -> abspath.o; dep MMD ./.depend/abspath.o.d abspath.o',
    ],
    // SQLite (libtool), zlib
    [
      'gcc -g -O2 -DSQLITE_OS_UNIX=1 -I. -I./src -D_HAVE_SQLITE_CONFIG_H -DBUILD_sqlite -DNDEBUG -I/usr/include/tcl8.6 -DSQLITE_THREADSAFE=1 -c sqlite3.c -fPIC -DPIC -o .libs/sqlite3.o',
      'c sqlite3.c -> .libs/sqlite3.o',
    ],
    [
      'gcc -O3 -D_LARGEFILE64_SOURCE=1 -DHAVE_HIDDEN -I. -c -o example.o test/example.c',
      'c test/example.c -> example.o',
    ],
    [
      'gcc -O3 -fPIC -D_LARGEFILE64_SOURCE=1 -DHAVE_HIDDEN -DPIC -c -o objs/adler32.o adler32.c',
      'c adler32.c -> objs/adler32.o',
    ],
    // BusyBox and Linux (kbuild)
    [
      'gcc -Wp,-MD,applets/.applets.o.d -std=gnu99 -Iinclude -Ilibbb -include include/autoconf.h -D_GNU_SOURCE -DNDEBUG -DBB_VER=KBUILD_STR(1.36.1) -Wall -Os -DKBUILD_STR(s)=#s -DKBUILD_BASENAME=KBUILD_STR(applets) -c -o applets/applets.o applets/applets.c',
      'c applets/applets.c -> applets/applets.o; dep MD applets/.applets.o.d applets.o',
    ],
    [
      'gcc -Wp,-MMD,init/.main.o.d -nostdinc -I./arch/x86/include -I./include -include ./include/linux/compiler-version.h -include ./include/linux/kconfig.h -include ./include/linux/compiler_types.h -D__KERNEL__ -fmacro-prefix-map=./= -std=gnu11 -fshort-wchar -funsigned-char -fno-common -fno-PIE -fno-strict-aliasing -mno-sse -mno-mmx -mno-sse2 -mno-3dnow -mno-avx -fcf-protection=none -m64 -falign-jumps=1 -falign-loops=1 -mno-80387 -mno-fp-ret-in-387 -mpreferred-stack-boundary=3 -mskip-rax-setup -mtune=generic -mno-red-zone -mcmodel=kernel -Wno-sign-compare -fno-asynchronous-unwind-tables -mindirect-branch=thunk-extern -mindirect-branch-register -mfunction-return=thunk-extern -fno-jump-tables -fpatchable-function-entry=16,16 -fno-delete-null-pointer-checks -O2 -fstack-protector-strong -fno-omit-frame-pointer -pg -mrecord-mcount -mfentry -DCC_USING_FENTRY -falign-functions=16 -fno-strict-overflow -fno-stack-check -fconserve-stack -Wall -DKBUILD_MODFILE="init/main" -DKBUILD_BASENAME="main" -DKBUILD_MODNAME="main" -D__KBUILD_MODNAME=kmod_main -c -o init/main.o init/main.c',
      'c init/main.c -> init/main.o; dep MMD init/.main.o.d main.o',
    ],
    [
      'gcc -Wp,-MMD,drivers/x/.y.o.d -nostdinc -I./include -fplugin=./scripts/gcc-plugins/stackleak_plugin.so -fplugin-arg-stackleak_plugin-track-min-size=100 -O2 -c -o drivers/x/y.o drivers/x/y.c',
      'c drivers/x/y.c -> drivers/x/y.o; dep MMD drivers/x/.y.o.d y.o; local user-programs; nocache',
    ],
    [
      'gcc -Wp,-MMD,arch/x86/entry/.entry_64.o.d -nostdinc -D__ASSEMBLY__ -c -o arch/x86/entry/entry_64.o arch/x86/entry/entry_64.S',
      'pass not-c-or-cxx',
    ],
    [
      'gcc -E -Wp,-MMD,arch/x86/kernel/.vmlinux.lds.d -nostdinc -P -Ux86 -D__ASSEMBLY__ -DLINKER_SCRIPT -o arch/x86/kernel/vmlinux.lds arch/x86/kernel/vmlinux.lds.S',
      'pass not-a-compile',
    ],
    // CMake: Ninja and Makefile generators, its probes
    [
      '/usr/bin/c++ -DRE2_EXPORTS -I/src/re2 -O3 -DNDEBUG -fPIC -pthread -std=c++17 -MD -MT CMakeFiles/re2.dir/re2/re2.cc.o -MF CMakeFiles/re2.dir/re2/re2.cc.o.d -o CMakeFiles/re2.dir/re2/re2.cc.o -c /src/re2/re2/re2.cc',
      'c++ /src/re2/re2/re2.cc -> CMakeFiles/re2.dir/re2/re2.cc.o; dep MD CMakeFiles/re2.dir/re2/re2.cc.o.d CMakeFiles/re2.dir/re2/re2.cc.o',
    ],
    ['/usr/bin/cc CMakeCCompilerId.c', 'pass not-a-compile'],
    [
      '/usr/bin/cc -v -o CMakeFiles/cmTC_5d1f0.dir/CMakeCCompilerABI.c.o -c /usr/share/cmake-3.25/Modules/CMakeCCompilerABI.c',
      'pass not-a-compile',
    ],
    [
      '/usr/bin/cc -DCHECK_FUNCTION_EXISTS=pthread_create -o CMakeFiles/cmTC_1.dir/CheckFunctionExists.c.o -c /usr/share/cmake-3.25/Modules/CheckFunctionExists.c',
      'c /usr/share/cmake-3.25/Modules/CheckFunctionExists.c -> CMakeFiles/cmTC_1.dir/CheckFunctionExists.c.o',
    ],
    ['/usr/bin/ccache /usr/bin/cc -c x.c', 'pass unknown-compiler'],
    // Meson (and its precompiled headers)
    [
      'cc -Isrc/libfoo.so.p -Isrc -I../src -fdiagnostics-color=always -D_FILE_OFFSET_BITS=64 -Wall -Winvalid-pch -O2 -g -fPIC -MD -MQ src/libfoo.so.p/foo.c.o -MF src/libfoo.so.p/foo.c.o.d -o src/libfoo.so.p/foo.c.o -c ../src/foo.c',
      'c ../src/foo.c -> src/libfoo.so.p/foo.c.o; dep MD src/libfoo.so.p/foo.c.o.d src/libfoo.so.p/foo.c.o',
    ],
    [
      'c++ -Ifoo.p -fdiagnostics-color=always -Winvalid-pch -include foo.p/pch.h -MD -MQ foo.p/a.cc.o -MF foo.p/a.cc.o.d -o foo.p/a.cc.o -c ../a.cc',
      'c++ ../a.cc -> foo.p/a.cc.o; dep MD foo.p/a.cc.o.d foo.p/a.cc.o; local precompiled-header; nocache',
      { exists: ['/w/foo.p/pch.h.gch'] },
    ],
    [
      'c++ -Ifoo.p -x c++-header -MD -MQ foo.p/pch.h.gch -MF foo.p/pch.h.gch.d -o foo.p/pch.h.gch -c ../pch/foo_pch.h',
      'pass not-c-or-cxx',
    ],
    // Python extensions (setuptools)
    [
      'x86_64-linux-gnu-gcc -Wno-unused-result -Wsign-compare -DNDEBUG -g -fwrapv -O2 -Wall -g -fstack-protector-strong -Wformat -Werror=format-security -g -fwrapv -O2 -fPIC -I/usr/include/python3.11 -c src/mod.c -o build/temp.linux-x86_64-cpython-311/src/mod.o',
      'c src/mod.c -> build/temp.linux-x86_64-cpython-311/src/mod.o',
    ],
    [
      'x86_64-linux-gnu-gcc -shared -Wl,-O1 -Wl,-Bsymbolic-functions -g -fwrapv -O2 build/temp.linux-x86_64-cpython-311/src/mod.o -L/usr/lib/x86_64-linux-gnu -o build/lib/mod.cpython-311-x86_64-linux-gnu.so',
      'pass not-a-compile',
    ],
    // OpenSSL
    [
      'gcc -I. -Iinclude -fPIC -pthread -m64 -Wa,--noexecstack -Wall -O3 -DOPENSSL_USE_NODELETE -DL_ENDIAN -DOPENSSL_PIC -DOPENSSLDIR="/usr/local/ssl" -MMD -MF crypto/libcrypto-lib-aes.d.tmp -MT crypto/libcrypto-lib-aes.o -c -o crypto/libcrypto-lib-aes.o crypto/aes.c',
      'c crypto/aes.c -> crypto/libcrypto-lib-aes.o; dep MMD crypto/libcrypto-lib-aes.d.tmp crypto/libcrypto-lib-aes.o',
    ],
    [
      'gcc -fPIC -pthread -m64 -Wa,--noexecstack -c -o crypto/aes/libcrypto-lib-aesni-x86_64.o crypto/aes/aesni-x86_64.s',
      'pass not-c-or-cxx',
    ],
    // autoconf's probes
    [
      'gcc -c -g -O2 -Werror conftest.c',
      'c conftest.c -> conftest.o; local autoconf-probe; nocache',
    ],
    ['g++ -c -g -O2 conftest.cpp', 'c++ conftest.cpp -> conftest.o; local autoconf-probe; nocache'],
    ['gcc -E -I. conftest.c', 'pass not-a-compile'],
    ['gcc -V', 'pass not-a-compile'],
    ['gcc -qversion', 'pass not-a-compile'],
    ['gcc -o conftest -g -O2 conftest.c -lm', 'pass not-a-compile'],
    [
      'gcc -MT sub/conftest.o -MD -MP -MF sub/conftest.TPo -c -o sub/conftest.o sub/conftest.c',
      'c sub/conftest.c -> sub/conftest.o; dep MD sub/conftest.TPo sub/conftest.o; local autoconf-probe; nocache',
    ],
    // outputs that are not files
    [
      'gcc -MD -MF /dev/null -c foo.c',
      'c foo.c -> foo.o; dep MD /dev/null foo.o; local device-output; nocache',
    ],
    ['gcc -c -o /dev/null foo.c', 'c foo.c -> /dev/null; local device-output; nocache'],
    ['gcc -MD -MF - -c foo.c', 'c foo.c -> foo.o; dep MD - foo.o; local device-output; nocache'],
    // clang
    [
      'clang -Iinc -O2 -MD -MT a.o -MF a.o.d -o a.o -c a.c',
      'c a.c -> a.o; dep MD a.o.d a.o; local clang-unverified',
    ],
    [
      'clang++ -std=c++20 -fmodules -c a.cc',
      'c++ a.cc -> a.o; local cxx-modules,clang-unverified; nocache',
    ],
    ['clang -mllvm -inline-threshold=100 -c a.c', 'c a.c -> a.o; local clang-unverified'],
    // assorted
    ['gcc -c -fopenmp -O2 omp.c', 'c omp.c -> omp.o'],
    ['gcc -c -fsanitize=address -fno-omit-frame-pointer foo.c', 'c foo.c -> foo.o'],
    ['gcc -pipe -c foo.c', 'c foo.c -> foo.o'],
    ['gcc -c foo.c -o foo.o -lm', 'c foo.c -> foo.o'],
    ['gcc -c -DX -UX -D Y -U Z foo.c', 'c foo.c -> foo.o'],
    ['gcc -c foo.c -MD -o out/foo.o', 'c foo.c -> out/foo.o; dep MD out/foo.d out/foo.o'],
    ['gcc -c foo.cxx -o foo.o', 'c++ foo.cxx -> foo.o'],
    ['gcc -c foo.cp', 'c++ foo.cp -> foo.o'],
    ['gcc -c FOO.C', 'c++ FOO.C -> FOO.o'],
    ['gcc -x c++ -c foo.h -o foo.o', 'c++ foo.h -> foo.o'],
    ['gcc -c a.c -c b.c', 'pass several-inputs'],
    ['gcc -c -flto=auto -ffat-lto-objects foo.c', 'c foo.c -> foo.o; local records-command-line'],
    ['gcc -c -Wa,-adhlns=foo.lst foo.c', 'c foo.c -> foo.o; local assembler-files; nocache'],
    [
      'gcc -c -Wp,-MD,.foo.d,-MT,x foo.c',
      'c foo.c -> foo.o; local unsupported-option; nocache; nodirect',
    ],
    ['gcc -c -Wp,-I,inc foo.c', 'c foo.c -> foo.o; nodirect'],
    [
      'gcc -c @opts.rsp',
      'c src/x.c -> obj/x.o',
      { files: { '/w/opts.rsp': '-O2 src/x.c -o obj/x.o' } },
    ],
  ];
  for (const [command, want, fs] of corpus) {
    it(command.length > 100 ? `${command.slice(0, 97)}...` : command, () => {
      assert.equal(summary(cls(command, fs)), want);
    });
  }
});
