// `npm run release` (after `npm run build`): release/muster-<version>-linux-<arch>.tar.gz, one
// directory muster-<version>-linux-<arch>/ that runs on a Linux machine with nothing installed:
//   node/bin/node       the Node.js of scripts/fetch-node.js (bin/muster runs it, not a `node` on PATH)
//   node_modules/       the production dependencies only (`npm ci --omit=dev`), better-sqlite3's
//                       addon built for the bundled Node's ABI, so no machine needs build tools
//   dist/               cli, src (the host and extensions shipped to agents), web, native
//   bin/muster, package.json, package-lock.json, deploy/, docs/, examples/, README and CHANGELOG
//   schemas/            plan.schema.json, the plan language's JSON Schema for editors
// For this machine's architecture only: the addon is compiled here. The addon is kept in
// release/cache/ by the better-sqlite3 version and Node ABI it was built for, as is the Node
// fetched: a second release (CI makes one per Node it tests on) compiles nothing.
//
//   node scripts/release.js [--out DIR]      prints the tarball's path
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetchNode, releaseArch } from './fetch-node.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { encoding: 'utf8', ...options });
  if (result.error) throw result.error;
  if (result.status !== 0)
    throw new Error(
      `${command} ${args.join(' ')} failed (${result.status}):\n${result.stdout}\n${result.stderr}`,
    );
  return result.stdout;
}

/** The compiled tree a release needs: no test or benchmark code, no fallback launcher. */
function checkBuilt() {
  if (!existsSync(join(root, 'dist/cli/muster.js')))
    throw new Error('no dist/cli/muster.js: run `npm run build` first (npm run release does)');
  // The launcher's shell fallback (no C compiler at build time) runs `node` from PATH.
  const launcher = readFileSync(join(root, 'dist/native/muster-cc'));
  if (launcher.subarray(0, 4).toString('latin1') !== '\x7fELF')
    throw new Error('dist/native/muster-cc is not compiled (no C compiler at build time?)');
}

/** The package.json a release carries: the same dependencies (npm ci checks them against the
 * lock), no scripts (`prepare` builds, which needs the dev dependencies a release has none of). */
function releasePackageJson() {
  const { scripts: _scripts, ...rest } = pkg;
  return JSON.stringify(rest, null, 2) + '\n';
}

function copyTree(stage) {
  for (const name of [
    'bin',
    'deploy',
    'docs',
    'schemas',
    'README.md',
    'CHANGELOG.md',
    'package-lock.json',
  ])
    cpSync(join(root, name), join(stage, name), { recursive: true });
  cpSync(join(root, 'examples'), join(stage, 'examples'), {
    recursive: true,
    // c-many/generate.js writes its project to examples/c-many/out/ by default.
    filter: (source) => !source.startsWith(join(root, 'examples/c-many/out')),
  });
  writeFileSync(join(stage, 'package.json'), releasePackageJson());
  for (const part of ['cli', 'src', 'web', 'native'])
    cpSync(join(root, 'dist', part), join(stage, 'dist', part), {
      recursive: true,
      verbatimSymlinks: true,
    });
}

/** better-sqlite3's addon for `node`'s ABI: from release/cache/, or compiled and kept there. */
function sqliteAddon(stage, node, cacheDir) {
  const nodeBin = join(node, 'bin/node');
  const abi = run(nodeBin, ['-p', 'process.versions.modules']).trim();
  const moduleDir = join(stage, 'node_modules/better-sqlite3');
  const { version } = JSON.parse(readFileSync(join(moduleDir, 'package.json'), 'utf8'));
  const cached = join(cacheDir, `better-sqlite3-${version}-node${abi}-linux-${releaseArch()}.node`);
  if (!existsSync(cached)) {
    // Its install script (prebuild-install, else node-gyp), under the bundled Node and with its
    // headers: prebuilt binaries come from GitHub, which a build must not need.
    run('npm', ['rebuild', 'better-sqlite3', '--foreground-scripts'], {
      cwd: stage,
      env: {
        ...process.env,
        PATH: `${join(node, 'bin')}${delimiter}${process.env.PATH ?? ''}`,
        npm_config_nodedir: node,
        npm_config_build_from_source: 'true',
        // node-gyp's make: SQLite and the binding are two compiles, side by side.
        JOBS: 'max',
      },
    });
    const built = join(moduleDir, 'build/Release/better_sqlite3.node');
    const partial = `${cached}.${process.pid}`;
    copyFileSync(built, partial);
    renameSync(partial, cached);
  }
  // The addon alone: no objects, no SQLite sources (a release never compiles).
  for (const name of ['build', 'deps', 'src'])
    rmSync(join(moduleDir, name), { recursive: true, force: true });
  mkdirSync(join(moduleDir, 'build/Release'), { recursive: true });
  copyFileSync(cached, join(moduleDir, 'build/Release/better_sqlite3.node'));
  // Loaded by the Node that will run it, as the coordinator's store does.
  run(
    nodeBin,
    [
      '-e',
      "const D = require('better-sqlite3'); if (new D(':memory:').prepare('select 1 as x').get().x !== 1) process.exit(1)",
    ],
    { cwd: stage },
  );
}

/** Builds the tarball into `outDir`; returns its path. */
export function makeRelease(outDir = join(root, 'release')) {
  checkBuilt();
  const arch = releaseArch();
  const name = `muster-${pkg.version}-linux-${arch}`;
  const cacheDir = join(root, 'release/cache');
  const node = fetchNode(cacheDir, arch);
  mkdirSync(outDir, { recursive: true });
  const work = mkdtempSync(join(outDir, '.stage-'));
  try {
    const stage = join(work, name);
    mkdirSync(stage);
    copyTree(stage);
    mkdirSync(join(stage, 'node/bin'), { recursive: true });
    copyFileSync(join(node, 'bin/node'), join(stage, 'node/bin/node'));
    copyFileSync(join(node, 'LICENSE'), join(stage, 'node/LICENSE'));
    run('chmod', ['755', join(stage, 'node/bin/node')]);
    // Under the bundled Node, so npm judges the dependencies' engines against it.
    run(
      'npm',
      ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'],
      {
        cwd: stage,
        env: { ...process.env, PATH: `${join(node, 'bin')}${delimiter}${process.env.PATH ?? ''}` },
      },
    );
    sqliteAddon(stage, node, cacheDir);
    rmSync(join(stage, 'node_modules/.package-lock.json'), { force: true });
    const version = run(join(stage, 'bin/muster'), ['--version']).trim();
    if (version !== pkg.version) throw new Error(`bin/muster --version said ${version}`);
    const tarball = join(outDir, `${name}.tar.gz`);
    const partial = join(work, `${name}.tar.gz`);
    // Owned by root, in name order: the same inputs give the same listing.
    run('tar', [
      '-czf',
      partial,
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '--sort=name',
      '-C',
      work,
      name,
    ]);
    renameSync(partial, tarball);
    return tarball;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf('--out');
  const tarball = makeRelease(at > 0 ? resolve(process.argv[at + 1] ?? '') : undefined);
  console.log(tarball);
  console.error(`${(statSync(tarball).size / 1e6).toFixed(1)} MB`);
}
