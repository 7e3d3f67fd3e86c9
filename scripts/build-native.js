// Run at the end of `npm run build`: compiles the native launcher native/muster-cc.c into
// dist/native/muster-cc (design §5, "Why C, and where it is built"). Static first (no dependence
// on the build's glibc, LD_LIBRARY_PATH or LD_PRELOAD), dynamic when there is no libc.a. With no C
// compiler at all, dist/native/muster-cc becomes a shell script that runs `muster cc` in Node:
// correct, but a Node start per compile. Skipped when the output is newer than the source.
// Then dist/native/masquerade/ gets the compiler names `muster build` puts first on PATH (gcc,
// g++, cc, c++, clang, clang++: src/cli/cc/launch-env.ts), each a relative link to the launcher.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'native/muster-cc.c');
// Included by muster-cc.c (one translation unit): `muster build`'s native front end.
const included = [join(root, 'native/build-front.c')];
const output = join(root, 'dist/native/muster-cc');
const flags = ['-O2', '-Wall', '-Wextra', '-std=c99', '-D_POSIX_C_SOURCE=200809L'];

function isScript(path) {
  return readFileSync(path).subarray(0, 2).toString() === '#!';
}

function upToDate() {
  if (!existsSync(output) || isScript(output)) return false;
  const built = statSync(output).mtimeMs;
  return [source, ...included, fileURLToPath(import.meta.url)].every(
    (input) => built > statSync(input).mtimeMs,
  );
}

/** `$CC` may hold a command with arguments (`ccache gcc`), as make reads it. */
function compile(extra) {
  const [command = 'cc', ...args] = (process.env['CC'] || 'cc').trim().split(/\s+/);
  const result = spawnSync(command, [...args, ...flags, ...extra, '-o', output, source], {
    stdio: ['ignore', 'inherit', 'pipe'],
    encoding: 'utf8',
  });
  if (result.error) return { ran: false, stderr: result.error.message };
  return { ran: true, ok: result.status === 0, stderr: result.stderr };
}

function writeNodeFallback(why) {
  console.warn(
    `build-native: warning: ${why}; dist/native/muster-cc runs \`muster cc\` in Node instead, ` +
      'which costs a Node start per compile',
  );
  rmSync(output, { force: true });
  writeFileSync(
    output,
    '#!/bin/sh\n' +
      '# Written by scripts/build-native.js when no C compiler worked: correct, but slow.\n' +
      'self=$(readlink -f "$0")\n' +
      "# bin/muster's `muster build`: the Node front end (`--build-front-end NODE CLI build ...`).\n" +
      'if [ "$1" = --build-front-end ]; then n=$2 c=$3; shift 3; exec "$n" "$c" "$@"; fi\n' +
      "# Called by a compiler's name (masquerade), that name is the compiler: the launcher form.\n" +
      'case ${0##*/} in muster-cc) ;; *) set -- "${0##*/}" "$@" ;; esac\n' +
      'exec node "${self%/dist/native/muster-cc}/dist/cli/muster.js" cc "$@"\n',
  );
}

mkdirSync(dirname(output), { recursive: true });
if (!upToDate()) {
  let result = compile(['-static']);
  if (result.ran && !result.ok) result = compile([]);
  // A broken toolchain (no libc headers) must not fail `npm ci`: the launcher has a slow twin.
  if (result.ran && !result.ok) {
    process.stderr.write(result.stderr);
    writeNodeFallback('compiling native/muster-cc.c failed');
  } else if (!result.ran) {
    writeNodeFallback(`no C compiler (${result.stderr})`);
  }
  chmodSync(output, 0o755);
}

// The same names as MASQUERADE_NAMES and LAUNCHER_NAME in src/cli/cc/launch-env.ts (a unit test
// checks): the launcher itself too, for an install path with a space (launch-env.ts says why).
const masquerade = join(dirname(output), 'masquerade');
mkdirSync(masquerade, { recursive: true });
for (const name of ['cc', 'c++', 'gcc', 'g++', 'clang', 'clang++', 'muster-cc']) {
  const link = join(masquerade, name);
  const current = lstatSync(link, { throwIfNoEntry: false });
  if (current?.isSymbolicLink() && readlinkSync(link) === '../muster-cc') continue;
  rmSync(link, { force: true });
  symlinkSync('../muster-cc', link);
}
