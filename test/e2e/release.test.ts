/**
 * `npm run release`'s tarball (scripts/release.js) as an operator uses it: unpacked into an empty
 * directory on a machine whose PATH has no Node, its bin/muster runs a coordinator, an agent and
 * the CLI, which build the example C program. One tarball for the file, made in `before` (the
 * first one of a checkout compiles better-sqlite3 for the bundled Node: release/cache/ keeps it).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, readFile, readdir, readlink, stat, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { BuildView } from '../../src/api/views/builds.js';
import { cleanup, makeTempDir, startAgent, waitFor } from '../helpers/agent-process.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import {
  ADMIN_PASSWORD,
  killCoordinators,
  startCoordinator,
} from '../helpers/coordinator-process.js';

const exec = promisify(execFile);
const root = fileURLToPath(new URL('../../../', import.meta.url));
const version = (
  JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string }
).version;
const name = `muster-${version}-linux-${process.arch}`;
/** What a PATH without Node leaves out. */
const NODE_COMMANDS = new Set(['node', 'nodejs', 'npm', 'npx', 'corepack']);

after(async () => {
  await killCoordinators();
  await cleanup();
});

/**
 * A directory of links to every command on this PATH but Node's (first one of a name wins, as
 * a PATH lookup finds it): the compiler, make, sh and the rest stay, `node` is not found.
 */
async function pathWithoutNode(): Promise<string> {
  const dir = await makeTempDir('muster-path-');
  const linked = new Set<string>();
  for (const from of (process.env.PATH ?? '').split(':')) {
    if (!from.startsWith('/')) continue;
    for (const entry of await readdir(from).catch(() => [] as string[])) {
      if (NODE_COMMANDS.has(entry) || linked.has(entry)) continue;
      linked.add(entry);
      await symlink(join(from, entry), join(dir, entry));
    }
  }
  return dir;
}

describe('the release tarball', () => {
  let install = '';
  let bin = '';
  let path = '';

  before(async () => {
    const out = await makeTempDir('muster-release-out-');
    // Bounded, below the runner's 10 min: a first build compiles SQLite (2 to 3 min on two busy
    // cores), later ones reuse it.
    const made = await exec(process.execPath, [join(root, 'scripts/release.js'), '--out', out], {
      cwd: root,
      timeout: 540_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    const tarball = made.stdout.trim();
    assert.equal(tarball, join(out, `${name}.tar.gz`));
    const empty = await makeTempDir('muster-release-');
    assert.deepEqual(await readdir(empty), []);
    await exec('tar', ['-xzf', tarball, '-C', empty], { timeout: 120_000 });
    assert.deepEqual(await readdir(empty), [name]);
    install = join(empty, name);
    bin = join(install, 'bin/muster');
    path = await pathWithoutNode();
    await assert.rejects(exec('/bin/sh', ['-c', 'command -v node'], { env: { PATH: path } }));
    await exec('/bin/sh', ['-c', 'command -v cc && command -v make'], { env: { PATH: path } });
  });

  it('holds Node, the production dependencies only and the compiled tree', async () => {
    assert.ok(((await stat(join(install, 'node/bin/node'))).mode & 0o111) !== 0);
    for (const part of ['fastify', 'better-sqlite3/build/Release/better_sqlite3.node', 'pino'])
      await stat(join(install, 'node_modules', part));
    // The plan schema, for editors that check muster.yml (docs/plans.md).
    const schema = JSON.parse(
      await readFile(join(install, 'schemas/plan.schema.json'), 'utf8'),
    ) as { title?: unknown };
    assert.equal(schema.title, 'Muster build plan');
    // Dev dependencies, SQLite's sources and the tests stay out.
    for (const absent of [
      'node_modules/typescript',
      'node_modules/eslint',
      'node_modules/better-sqlite3/deps',
      'dist/test',
    ])
      await assert.rejects(stat(join(install, absent)), { code: 'ENOENT' }, absent);
    const pkg = JSON.parse(await readFile(join(install, 'package.json'), 'utf8')) as {
      scripts?: unknown;
    };
    assert.equal(pkg.scripts, undefined, 'no `prepare` that would build');
    assert.equal((await exec(bin, ['--version'], { env: { PATH: path } })).stdout.trim(), version);
  });

  it('has the program the systemd units start, installed at /opt/muster', async () => {
    for (const unit of ['muster-agent.service', 'muster-coordinator.service']) {
      const text = await readFile(join(install, 'deploy', unit), 'utf8');
      const program = /^ExecStart=(\S+)/m.exec(text)?.[1];
      assert.equal(program, '/opt/muster/bin/muster', unit);
      const local = join(install, program.slice('/opt/muster/'.length));
      assert.ok(((await stat(local)).mode & 0o111) !== 0, `${unit}: ${local} is executable`);
    }
  });

  it('runs a coordinator and an agent that build the example C program, with no Node on PATH', async () => {
    const env = { PATH: path };
    const coordinator = await startCoordinator({ command: bin, env });
    const agent = await startAgent({ command: bin, env });
    // bin/muster execs the bundled Node in place: the daemons are that Node.
    const bundledNode = join(install, 'node/bin/node');
    assert.equal(await readlink(`/proc/${coordinator.process.pid}/exe`), bundledNode);
    assert.equal(await readlink(`/proc/${agent.process.pid}/exe`), bundledNode);

    const cliEnv = {
      ...env,
      MUSTER_CONFIG_DIR: await makeTempDir('muster-cli-'),
      MUSTER_URL: '',
      MUSTER_TOKEN: '',
    };
    const muster = (
      args: string[],
      options: { cwd?: string; input?: string } = {},
    ): Promise<CliResult> =>
      runCli(args, { command: bin, env: cliEnv, timeoutMs: 120_000, ...options });
    const login = await muster(['login', coordinator.url, '--user', 'admin', '--password-stdin'], {
      input: `${ADMIN_PASSWORD}\n`,
    });
    assert.equal(login.code, 0, login.stderr);
    const added = await muster([
      'agents',
      'add',
      'release-agent',
      `127.0.0.1:${agent.port}`,
      '--access-key',
      agent.accessKey,
      '--fingerprint',
      agent.fingerprint!,
    ]);
    assert.equal(added.code, 0, added.stderr);
    await waitFor(
      async () => {
        const rows = JSON.parse((await muster(['agents', 'list', '--json'])).stdout) as {
          status: string;
        }[];
        return rows.length === 1 && rows[0]?.status === 'connected';
      },
      30_000,
      'the agent connected',
    );

    const work = await makeTempDir('muster-work-');
    await cp(join(install, 'examples/c-hello'), work, { recursive: true });
    const run = await muster(['run', 'muster.yml', '--json'], { cwd: work });
    assert.equal(run.code, 0, run.stderr);
    const build = JSON.parse(run.stdout) as BuildView;
    assert.equal(build.status, 'succeeded');
    for (const task of build.tasks) {
      assert.equal(task.status, 'succeeded', task.name);
      assert.equal(task.agent, 'release-agent');
    }
    const { stdout } = await exec(join(work, 'hello'));
    assert.equal(stdout, await readFile(join(work, 'expected.txt'), 'utf8'));
  });
});
