/**
 * The real C and C++ projects of the compile benchmarks, from Debian's source packages (the
 * upstream `orig` tarballs, built with their own Makefiles, unchanged): how to build one with
 * plain make and `-jN`, how to clean it, and how to check that a build made what it should.
 * Shared by the peers' half (bench/cc-peers.ts) and Muster's half of the compile benchmark.
 */
import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { debianSourceTree } from '../test/helpers/debian-source.js';

const exec = promisify(execFile);

export interface CcProject {
  /** For rows and logs: "Lua 5.4". */
  name: string;
  /** The Debian source package. */
  pkg: string;
  /** What one build compiles and links, for the docs. */
  what: string;
  /** make's arguments for one build with `jobs` jobs, run in the tree (no compiler named). */
  buildArgs(jobs: number): string[];
  /**
   * The make variables that put `launcher` in front of the compiler the Makefile names (the
   * launcher form, `CC="distcc gcc -std=gnu99"`), for runners that do not use a masquerade
   * directory. Given on make's command line, they beat the Makefile's own assignments.
   */
  launcherVars(launcher: string): string[];
  /** Run once on a fresh tree, before any build (not timed). */
  prepare?(tree: string): Promise<void>;
  /** make's arguments that remove everything a build made. */
  cleanArgs: string[];
  /** Throws unless the build made what it should (the files, and the program runs). */
  check(tree: string): Promise<void>;
  /**
   * Rounds without --quick or BENCH_CC_ROUNDS: more for a short build, whose ratios this VM's
   * ±15 % from build to build moves the most (a median of 7 instead of 3).
   */
  rounds: number;
}

async function mustBeFile(path: string): Promise<void> {
  const info = await stat(path).catch(() => undefined);
  if (info === undefined || !info.isFile() || info.size === 0)
    throw new Error(`the build made no ${path}`);
}

/**
 * Lua 5.4.4: `make linux` (= `linux-noreadline` in 5.4.4: no readline headers needed) builds
 * src/liblua.a, src/lua and src/luac from 34 C files; src/Makefile says `CC= gcc -std=gnu99`.
 */
export const lua: CcProject = {
  name: 'Lua 5.4',
  pkg: 'lua5.4',
  what: 'Lua 5.4.4 (`make linux`: 34 C files at -O2, liblua.a, lua, luac)',
  buildArgs: (jobs) => [`-j${jobs}`, 'linux'],
  launcherVars: (launcher) => [`CC=${launcher} gcc -std=gnu99`],
  cleanArgs: ['clean'],
  rounds: 7,
  async check(tree) {
    for (const name of ['liblua.a', 'lua', 'luac']) await mustBeFile(join(tree, 'src', name));
    const { stdout } = await exec(join(tree, 'src', 'lua'), [
      '-e',
      'local t = {} for i = 1, 100 do t[i] = i * i end assert(t[12] == 144) print(_VERSION)',
    ]);
    if (stdout.trim() !== 'Lua 5.4') throw new Error(`src/lua printed ${JSON.stringify(stdout)}`);
  },
};

/**
 * The 20 objects of re2's libre2.a that Debian's tarball can build offline: it ships without the
 * generated tables (`+dfsg`), and `unicode_groups.cc` and `unicode_casefold.cc` would need the
 * Unicode data from the network, so those two and the archive are left out; `perl_groups.cc` is
 * made once by the tarball's own Perl script (the Makefile's `REBUILD_TABLES` rule).
 */
const re2Objects = [
  'util/rune',
  'util/strutil',
  're2/bitstate',
  're2/compile',
  're2/dfa',
  're2/filtered_re2',
  're2/mimics_pcre',
  're2/nfa',
  're2/onepass',
  're2/parse',
  're2/perl_groups',
  're2/prefilter',
  're2/prefilter_tree',
  're2/prog',
  're2/re2',
  're2/regexp',
  're2/set',
  're2/simplify',
  're2/stringpiece',
  're2/tostring',
].map((name) => `obj/${name}.o`);

/**
 * re2 2022-06-01: 20 C++ files of libre2 at the Makefile's own `-O3 -g` (`CXX?=g++`: the
 * compiler comes from the environment or PATH), 40–70 s with -j2 on this machine.
 */
export const re2: CcProject = {
  name: 're2',
  pkg: 're2',
  what: `re2 2022-06-01 (\`make\` of ${re2Objects.length} libre2 objects: C++ at -O3 -g)`,
  buildArgs: (jobs) => [`-j${jobs}`, ...re2Objects],
  launcherVars: (launcher) => [`CXX=${launcher} g++`],
  async prepare(tree) {
    await exec('make', ['REBUILD_TABLES=1', 're2/perl_groups.cc'], { cwd: tree });
  },
  cleanArgs: ['clean'],
  rounds: 3,
  async check(tree) {
    for (const object of re2Objects) await mustBeFile(join(tree, object));
  },
};

/**
 * TinyXML 2.6.2: its own Makefile builds `xmltest` from 5 C++ files at `-O3 -Wall` (`CXX := g++`
 * written in the Makefile), and `./xmltest` is its test suite (exit code = failures). xmltest.cpp
 * warns under -Wall: a compile that prints something.
 */
export const tinyxml: CcProject = {
  name: 'TinyXML',
  pkg: 'tinyxml',
  what: 'TinyXML 2.6.2 (`make`: 5 C++ files at -O3, xmltest)',
  buildArgs: (jobs) => [`-j${jobs}`],
  launcherVars: (launcher) => [`CXX=${launcher} g++`, `LD=${launcher} g++`],
  cleanArgs: ['clean'],
  rounds: 3,
  async check(tree) {
    await mustBeFile(join(tree, 'xmltest'));
    const { stdout } = await exec(join(tree, 'xmltest'), [], { cwd: tree });
    if (!/Pass \d+, Fail 0/.test(stdout)) throw new Error('xmltest did not pass');
  },
};

/** A fresh tree of the project under `dir` (downloaded once per machine, extracted per call). */
export async function projectTree(project: CcProject, dir: string): Promise<string> {
  const tree = await debianSourceTree(project.pkg, dir);
  await project.prepare?.(tree);
  return tree;
}

/** Compiler invocations with `-c` in make's output (what distcc or icecream could send away). */
export function countCompiles(makeOutput: string): number {
  return makeOutput
    .split('\n')
    .filter((line) => /(^|\s)-c(\s|$)/.test(line) && /\b(gcc|g\+\+|cc|c\+\+)\b/.test(line)).length;
}
