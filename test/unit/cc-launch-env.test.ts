import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lstatSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import {
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

  it('works with no PATH at all', () => {
    assert.equal(launchEnvironment({}, paths, socket)['PATH'], paths.masquerade);
  });
});

describe('the installed masquerade directory', () => {
  it('holds every name launch-env puts on PATH, each a link to the launcher', () => {
    const paths = installedLauncherPaths();
    for (const name of MASQUERADE_NAMES) {
      const link = join(paths.masquerade, name);
      assert.ok(lstatSync(link).isSymbolicLink(), link);
      assert.equal(realpathSync(link), realpathSync(paths.launcher), link);
    }
  });
});
