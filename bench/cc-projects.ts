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
  /** make's arguments that remove everything a build made. */
  cleanArgs: string[];
  /** Throws unless the build made what it should (the files, and the program runs). */
  check(tree: string): Promise<void>;
}

async function mustBeFile(path: string): Promise<void> {
  const info = await stat(path).catch(() => undefined);
  if (info === undefined || !info.isFile() || info.size === 0)
    throw new Error(`the build made no ${path}`);
}

/**
 * Lua 5.4.4: `make linux` (= `linux-noreadline` in 5.4.4: no readline headers needed) builds
 * src/liblua.a, src/lua and src/luac from 33 C files; src/Makefile says `CC= gcc -std=gnu99`.
 */
export const lua: CcProject = {
  name: 'Lua 5.4',
  pkg: 'lua5.4',
  what: 'Lua 5.4.4 (`make linux`: 33 C files at -O2, liblua.a, lua, luac)',
  buildArgs: (jobs) => [`-j${jobs}`, 'linux'],
  launcherVars: (launcher) => [`CC=${launcher} gcc -std=gnu99`],
  cleanArgs: ['clean'],
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
 * re2 2022-06-01: `make obj/libre2.a` compiles 22 C++ files at the Makefile's own `-O3 -g`
 * (`CXX?=g++`: the compiler comes from the environment or PATH).
 */
export const re2: CcProject = {
  name: 're2',
  pkg: 're2',
  what: 're2 2022-06-01 (`make obj/libre2.a`: 22 C++ files at -O3 -g)',
  buildArgs: (jobs) => [`-j${jobs}`, 'obj/libre2.a'],
  launcherVars: (launcher) => [`CXX=${launcher} g++`],
  cleanArgs: ['clean'],
  async check(tree) {
    const archive = join(tree, 'obj', 'libre2.a');
    await mustBeFile(archive);
    const { stdout } = await exec('ar', ['t', archive]);
    const members = stdout.split('\n').filter((line) => line.endsWith('.o'));
    if (members.length !== 22)
      throw new Error(`obj/libre2.a holds ${members.length} objects, not 22`);
  },
};

/** A fresh tree of the project under `dir` (downloaded once per machine, extracted per call). */
export function projectTree(project: CcProject, dir: string): Promise<string> {
  return debianSourceTree(project.pkg, dir);
}

/** Compiler invocations with `-c` in make's output (what distcc or icecream could send away). */
export function countCompiles(makeOutput: string): number {
  return makeOutput
    .split('\n')
    .filter((line) => /(^|\s)-c(\s|$)/.test(line) && /\b(gcc|g\+\+|cc|c\+\+)\b/.test(line)).length;
}
