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
    assert.ok(!c.preprocessorKeyArgs.includes('-I.'));
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
    ['gcc -Xpreprocessor -DX -c foo.c', 'preprocessor-mode', true],
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
