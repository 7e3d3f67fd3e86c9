import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lstatSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import {
  LAUNCHER_NAME,
  MASQUERADE_NAMES,
  installedLauncherPaths,
  launchEnvironment,
} from '../../src/cli/cc/launch-env.js';

const paths = {
  launcher: '/opt/muster/dist/native/muster-cc',
  masquerade: '/opt/muster/dist/native/masquerade',
};
const socket = '/tmp/muster-build-x/cc.sock';

describe("muster build's environment for its command", () => {
  it('puts the masquerade directory first on PATH once, and names the socket', () => {
    const env = launchEnvironment(
      { PATH: `/usr/bin:${paths.masquerade}:/bin`, HOME: '/root' },
      paths,
      socket,
    );
    assert.equal(env['PATH'], `${paths.masquerade}:/usr/bin:/bin`);
    assert.equal(env['HOME'], '/root');
    assert.equal(env['MUSTER_CC_SOCKET'], socket);
    assert.equal(env['MUSTER_CC_MASQUERADE'], paths.masquerade);
    assert.equal(env['CMAKE_C_COMPILER_LAUNCHER'], paths.launcher);
    assert.equal(env['CMAKE_CXX_COMPILER_LAUNCHER'], paths.launcher);
  });

  it('points CC and CXX at the masquerade directory, or wraps what it does not hold', () => {
    const cases: [string | undefined, string | undefined, string, string][] = [
      [undefined, undefined, `${paths.masquerade}/cc`, `${paths.masquerade}/c++`],
      ['', ' ', `${paths.masquerade}/cc`, `${paths.masquerade}/c++`],
      ['gcc', 'g++', `${paths.masquerade}/gcc`, `${paths.masquerade}/g++`],
      ['clang', 'clang++', `${paths.masquerade}/clang`, `${paths.masquerade}/clang++`],
      [
        '/usr/bin/gcc-12',
        'g++ -std=c++17',
        `${paths.launcher} /usr/bin/gcc-12`,
        `${paths.launcher} g++ -std=c++17`,
      ],
      [
        `${paths.masquerade}/gcc`,
        `${paths.launcher} g++`,
        `${paths.masquerade}/gcc`,
        `${paths.launcher} g++`,
      ],
    ];
    for (const [cc, cxx, wantCc, wantCxx] of cases) {
      const env = launchEnvironment({ PATH: '/usr/bin', CC: cc, CXX: cxx }, paths, socket);
      assert.equal(env['CC'], wantCc, `CC=${String(cc)}`);
      assert.equal(env['CXX'], wantCxx, `CXX=${String(cxx)}`);
    }
  });

  it('uses the bare names when the install path has a space (found first on PATH)', () => {
    const spaced = {
      launcher: '/opt/my tools/muster/dist/native/muster-cc',
      masquerade: '/opt/my tools/muster/dist/native/masquerade',
    };
    const cases: [string | undefined, string][] = [
      [undefined, 'cc'],
      ['gcc', 'gcc'],
      ['/usr/bin/gcc-12', 'muster-cc /usr/bin/gcc-12'],
      ['ccache gcc', 'muster-cc ccache gcc'],
      ['muster-cc gcc', 'muster-cc gcc'],
    ];
    for (const [cc, want] of cases) {
      const env = launchEnvironment({ PATH: '/usr/bin', CC: cc }, spaced, socket);
      assert.equal(env['CC'], want, `CC=${String(cc)}`);
      assert.equal(env['PATH'], `${spaced.masquerade}:/usr/bin`);
      // A CMake list: spaces are no separators there.
      assert.equal(env['CMAKE_C_COMPILER_LAUNCHER'], spaced.launcher);
    }
    assert.equal(launchEnvironment({}, spaced, socket)['CXX'], 'c++');
  });

  it("keeps a user's own CMake compiler launcher, running first, then the launcher", () => {
    const env = launchEnvironment(
      {
        CMAKE_C_COMPILER_LAUNCHER: 'ccache',
        CMAKE_CXX_COMPILER_LAUNCHER: '/usr/bin/time;-v',
      },
      paths,
      socket,
    );
    assert.equal(env['CMAKE_C_COMPILER_LAUNCHER'], `ccache;${paths.launcher}`);
    assert.equal(env['CMAKE_CXX_COMPILER_LAUNCHER'], `/usr/bin/time;-v;${paths.launcher}`);
    // Ours already in it (a nested muster build, or set by hand): left as it is.
    for (const mine of [paths.launcher, `ccache;${paths.launcher}`, 'muster-cc', ' ']) {
      const again = launchEnvironment({ CMAKE_C_COMPILER_LAUNCHER: mine }, paths, socket);
      const want = mine.trim() === '' ? paths.launcher : mine;
      assert.equal(again['CMAKE_C_COMPILER_LAUNCHER'], want, mine);
    }
  });

  it('works with no PATH at all', () => {
    assert.equal(launchEnvironment({}, paths, socket)['PATH'], paths.masquerade);
  });
});

describe('the installed masquerade directory', () => {
  it('holds every name launch-env puts on PATH and the launcher, each a link to it', () => {
    const paths = installedLauncherPaths();
    for (const name of [...MASQUERADE_NAMES, LAUNCHER_NAME]) {
      const link = join(paths.masquerade, name);
      assert.ok(lstatSync(link).isSymbolicLink(), link);
      assert.equal(realpathSync(link), realpathSync(paths.launcher), link);
    }
  });
});
