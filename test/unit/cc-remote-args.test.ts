/**
 * The one check of a remote compile's arguments (src/extensions/cc/remote-args.ts), at its three
 * places: the agent's cc extension (input.ts: INVALID_INPUT naming the argument, nothing run),
 * the coordinator's job body (api/requests.ts remoteCompileInput) and the client, which keeps
 * such a compile here (classify.ts: local reason `agent-refuses`, or the table's own reason).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { remoteCompileInput } from '../../src/api/requests.js';
import { classify, type Compile } from '../../src/cli/cc/classify.js';
import { remoteJob } from '../../src/cli/cc/remote-job.js';
import { parseCompileInput } from '../../src/extensions/cc/input.js';
import {
  refusedCompileArgs,
  refusedCompileOptions,
  type CompileArgument,
} from '../../src/extensions/cc/remote-args.js';

const TOOLCHAIN = 'a'.repeat(64);

/** Lua's compile line as remote-job.ts sends it. */
const LUA = [
  '-std=gnu99',
  '-O2',
  '-Wall',
  '-Wextra',
  '-DLUA_COMPAT_5_3',
  '-DLUA_USE_LINUX',
  '-c',
  'lapi.c',
  '-o',
  'lapi.o',
];

function input(args: CompileArgument[], cwd = '', object = 'lapi.o') {
  return {
    toolchain: TOOLCHAIN,
    driver: 'bin/gcc',
    args,
    cwd,
    debugPrefixMaps: [],
    env: {},
    outputs: [{ name: 'object' as const, path: object }],
  };
}

/** A whole line with `options` before Lua's own. */
const withOptions = (...options: string[]): string[] => [...options, ...LUA];

function compile(command: string): Compile {
  const c = classify({
    compiler: 'gcc',
    args: command.split(' ').slice(1),
    cwd: '/w',
    env: {},
    readResponseFile: () => null,
    exists: () => false,
  });
  assert.ok(c.kind === 'compile', command);
  return c;
}

describe('remote compile arguments: what an agent runs', () => {
  it("accepts Lua's line, and the usual flags of real builds", () => {
    assert.equal(refusedCompileArgs(LUA, '', 'lapi.o'), null);
    for (const options of [
      ['-g', '-O0', '-fPIC', '-fno-omit-frame-pointer', '-Wa,--noexecstack'],
      ['-fdiagnostics-color=always', '-Werror=format-security', '-pedantic', '-std=c11'],
      ['--param', 'max-inline-insns-single=200', '--param=l1-cache-size=32'],
      ['-Wp,-DX=1,-UY', '-D', 'NAME="/usr/local/share"', '-U', 'Z', '-DPATH="/etc/x"'],
      ['-mavx2', '-march=x86-64-v3', '-m64', '-mcmodel=kernel', '-mno-red-zone'],
      ['-fsanitize=address,undefined', '-fvisibility=hidden', '-fstack-protector-strong'],
      ['-fdebug-prefix-map=/home/me=.', '-ffile-prefix-map=/a=/b', '-fmacro-prefix-map=./='],
      ['-gdwarf-5', '-ggdb', '-gz=zlib', '-g3', '-pg', '-pthread', '-w', '-pipe'],
      ['-lm', '-l', 'z', '-static', '-shared', '-fno-lto', '-Xassembler', '--gdwarf-5'],
    ]) {
      assert.equal(
        refusedCompileArgs(withOptions(...options), '', 'lapi.o'),
        null,
        options.join(' '),
      );
      assert.equal(refusedCompileOptions(options), null, options.join(' '));
    }
  });

  const refused: [string[], RegExp][] = [
    // Runs or loads another program.
    [['-wrapper', 'gdb,--args'], /argument 0 "-wrapper" runs or loads another program/],
    [['-B/tmp/evil/'], /"-B\/tmp\/evil\/" runs or loads another program/],
    [['-Bprefix'], /"-Bprefix" runs or loads another program/],
    [['-specs=/tmp/x.specs'], /"-specs=\/tmp\/x.specs" runs or loads another program/],
    [['--specs=x'], /"--specs=x" runs or loads another program/],
    [['-fplugin=./p.so'], /"-fplugin=.\/p.so" runs or loads another program/],
    [['-fplugin-arg-p-x=1'], /runs or loads another program/],
    [['-iplugindir=/tmp'], /"-iplugindir=\/tmp" runs or loads another program/],
    [['--plugin'], /runs or loads another program/],
    [['-fuse-ld=/tmp/ld'], /"-fuse-ld=\/tmp\/ld" runs or loads another program/],
    [['-mllvm', '-debug-pass=Arguments'], /"-mllvm" passes options to LLVM/],
    // Reads or writes files of its own.
    [['-fprofile-use=/tmp/p'], /"-fprofile-use=\/tmp\/p" reads or writes files of its own/],
    [['-fprofile-generate'], /reads or writes files of its own/],
    [['-fauto-profile=x'], /reads or writes files of its own/],
    [['-ftest-coverage'], /reads or writes files of its own/],
    [['-fdump-tree-all=/tmp/d'], /reads or writes files of its own/],
    [['-fopt-info-vec=/tmp/v'], /reads or writes files of its own/],
    [['-fstack-usage'], /reads or writes files of its own/],
    [['-fdiagnostics-format=sarif-file'], /reads or writes files of its own/],
    [['-fdiagnostics-add-output=sarif'], /reads or writes files of its own/],
    [['-flto'], /reads or writes files of its own/],
    [['-frecord-gcc-switches'], /reads or writes files of its own/],
    [['-fmodules-ts'], /reads or writes files of its own/],
    [['-fmodule-mapper=|sh'], /reads or writes files of its own/],
    [['-fsanitize-ignorelist=/etc/shadow'], /reads or writes files of its own/],
    [['-gsplit-dwarf'], /"-gsplit-dwarf" writes a second output/],
    [['-save-temps'], /"-save-temps" is not an option a remote compile takes/],
    [['-save-temps=obj'], /is not an option a remote compile takes/],
    [['-aux-info', 'x'], /"-aux-info" is not an option a remote compile takes/],
    [['-dumpdir', '/tmp/'], /"-dumpdir" is not an option/],
    [['-MD'], /"-MD" is not an option a remote compile takes/],
    [['-MF', '/tmp/x.d'], /"-MF" is not an option a remote compile takes/],
    [['-Xpreprocessor', '-DX'], /"-Xpreprocessor" is not an option/],
    [['-Wp,-MD,/tmp/x.d'], /"-Wp,-MD,\/tmp\/x.d" passes the preprocessor more than macros/],
    [['-Wa,-adhln=/tmp/l'], /"-Wa,-adhln=\/tmp\/l" gives the assembler a file/],
    [['-Wa,-alh'], /makes the assembler read or write a file/],
    [['-Wa,--MD,x.d'], /makes the assembler read or write a file/],
    [['-Wa,-I/etc'], /gives the assembler a file/],
    [['-Xassembler', '/tmp/x'], /argument 1 "\/tmp\/x" gives the assembler a file/],
    [['--sysroot=/'], /"--sysroot=\/" is not an option/],
    [['--sysroot', '/'], /"--sysroot" is not an option/],
    [['-isysroot', '/'], /"-isysroot" is not an option/],
    [['-I/etc'], /"-I\/etc" is not an option/],
    [['-include', '/etc/passwd'], /"-include" is not an option/],
    [['-nostdinc'], /is not an option/],
    // Asks the driver something, or is another mode.
    [['-print-prog-name=cc1'], /"-print-prog-name=cc1" is not an option/],
    [['--print-search-dirs'], /is not an option/],
    [['-v'], /"-v" is not an option/],
    [['-###'], /is not an option/],
    [['-E'], /"-E" is not an option/],
    [['-dumpspecs'], /is not an option/],
    // Links with paths or the linker's arguments.
    [['-Wl,-rpath,/tmp'], /"-Wl,-rpath,\/tmp" is a link option/],
    [['-Xlinker', '-E'], /"-Xlinker" is a link option/],
    [['-L/tmp'], /"-L\/tmp" is a link option/],
    [['-T', 'x.ld'], /"-T" is a link option/],
    [['-l/tmp/x'], /"-l\/tmp\/x" is a link option/],
    // Paths where names go, the agent's own processor, response files.
    [['-fsomething=/abs/path'], /"-fsomething=\/abs\/path" has a path or an odd value/],
    [['-Wfoo=../x'], /has a path or an odd value/],
    [['-march=native'], /"-march=native" names the agent's own processor/],
    [['--param', '../x'], /argument 1 "..\/x" is not a value --param takes here/],
    [['@/etc/args'], /argument 0 "@\/etc\/args" is a response file/],
  ];

  it('refuses every other shape, naming the argument: at the agent, the coordinator and the client', () => {
    for (const [options, message] of refused) {
      const what = options.join(' ');
      assert.match(refusedCompileOptions(options) ?? '', message, `options: ${what}`);
      const line = withOptions(...options);
      assert.match(refusedCompileArgs(line, '', 'lapi.o') ?? '', message, `line: ${what}`);
      // The agent: INVALID_INPUT, with the message.
      assert.throws(
        () => parseCompileInput(input(line)),
        (err: unknown) => {
          assert.equal((err as { code?: unknown }).code, 'INVALID_INPUT', what);
          assert.match((err as Error).message, /^cc\/compile: /, what);
          assert.match((err as Error).message, message, what);
          return true;
        },
      );
      // The coordinator: the job body does not parse.
      const parsed = remoteCompileInput.safeParse(input(line));
      assert.ok(!parsed.success, `coordinator: ${what}`);
      assert.match(parsed.error.issues[0]?.message ?? '', message, `coordinator: ${what}`);
      assert.deepEqual(parsed.error.issues[0]?.path, ['args']);
    }
  });

  it('refuses a separate option with no value', () => {
    assert.match(refusedCompileOptions(['-O2', '-D']) ?? '', /argument 1 "-D" has no value/);
    assert.match(refusedCompileOptions(['-Xassembler']) ?? '', /"-Xassembler" has no value/);
  });

  it('refuses the line itself: no -c, no or two sources, an -o other than the object, paths out', () => {
    const cases: [CompileArgument[], string, string, RegExp][] = [
      [['-O2', 'x.c', '-o', 'x.o'], '', 'x.o', /no -c/],
      [['-c', '-o', 'x.o'], '', 'x.o', /name 0 sources/],
      [['-c', 'x.c', 'y.c', '-o', 'x.o'], '', 'x.o', /name 2 sources/],
      [['-c', 'x.c'], '', 'x.o', /have 0 -o/],
      [['-c', 'x.c', '-o', 'x.o', '-o', 'x.o'], '', 'x.o', /have 2 -o/],
      [['-c', 'x.c', '-o', '/tmp/x.o'], '', 'x.o', /argument 2 "-o" must name the declared/],
      [['-c', 'x.c', '-o', '../x.o'], '', 'x.o', /"-o" must name the declared object "x.o"/],
      [['-c', 'x.c', '-o', 'y.o'], '', 'x.o', /"-o" must name the declared object/],
      [['-c', 'x.c', '-o', { workPath: 'y.o' }], '', 'x.o', /must name the declared object/],
      [['-c', 'x.c', '-o'], '', 'x.o', /must name the declared object/],
      [['-c', '/etc/passwd', '-o', 'x.o'], '', 'x.o', /"\/etc\/passwd" leads out of the work dir/],
      [['-c', '../../x.c', '-o', 'x.o'], 'c', 'c/x.o', /leads out of the work dir/],
      [['-c', '-', '-o', 'x.o'], '', 'x.o', /argument 1 "-" is not an option/],
      [['-c', '-x', 'assembler', 'x.s', '-o', 'x.o'], '', 'x.o', /"-x" must be -x c or -x c\+\+/],
      [['-c', { workPath: 'x.c' }, '-D', { workPath: 'y' }, '-o', 'x.o'], '', 'x.o', /"-D"/],
    ];
    for (const [args, cwd, object, message] of cases) {
      assert.match(refusedCompileArgs(args, cwd, object) ?? '', message, JSON.stringify(args));
    }
    // What remote-job.ts makes of paths: `..` that stay inside, a place in the work dir.
    for (const [args, cwd, object] of [
      [['-c', '../src/x.c', '-o', '../obj/x.o'], 'c', 'obj/x.o'],
      [['-c', { workPath: 'root/p/x.c' }, '-o', { workPath: 'root/p/x.o' }], '', 'root/p/x.o'],
      [['-c', '-x', 'c++', './x.C', '-o', './sub//x.o'], '', 'sub/x.o'],
    ] as [CompileArgument[], string, string][]) {
      assert.equal(refusedCompileArgs(args, cwd, object), null, JSON.stringify(args));
    }
  });

  it('the client keeps what an agent refuses here, and never lays it out for one', () => {
    for (const [command, reason] of [
      ['gcc -Wl,-E -c foo.c', 'agent-refuses'],
      ['gcc -iplugindir=/tmp -c foo.c', 'agent-refuses'],
      ['gcc -fopt-info-vec=/tmp/v -c foo.c', 'agent-refuses'],
      ['gcc -fdiagnostics-format=sarif-file -c foo.c', 'agent-refuses'],
      ['gcc -fsomething=/abs/path -c foo.c', 'agent-refuses'],
      // The table's own reason stands alone when it has one.
      ['gcc -wrapper gdb,--args -c foo.c', 'user-programs'],
      ['gcc -fplugin=./p.so -c foo.c', 'user-programs'],
      ['gcc -march=native -c foo.c', 'native-cpu'],
    ] as const) {
      const c = compile(command);
      assert.deepEqual(c.localReasons, [reason], command);
    }
    const lua = compile(`gcc ${LUA.join(' ')}`);
    assert.deepEqual(lua.localReasons, []);
    const job = remoteJob(lua, { id: TOOLCHAIN, driver: 'bin/gcc' }, '/w', {});
    assert.ok(job !== null);
    assert.equal(refusedCompileArgs(job.input.args, job.input.cwd, job.object), null);
    assert.ok(remoteCompileInput.safeParse(job.input).success);
    // A refused option that got this far anyway is not laid out for an agent.
    const sly: Compile = { ...lua, compileArgs: [...lua.compileArgs, '-wrapper', 'sh'] };
    assert.equal(remoteJob(sly, { id: TOOLCHAIN, driver: 'bin/gcc' }, '/w', {}), null);
  });
});
