/**
 * Security issue 10 with real processes (a coordinator, an agent, the `muster` command): a hostile
 * repository's plan cannot make `muster run` upload files from outside its directory through
 * symlinks, nor make it write outputs into .git/ or through a symlink already there; links that
 * stay inside the plan's directory work, and declared outputs come back.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BuildView } from '../../src/api/views/builds.js';
import { cleanup, makeTempDir, startAgent, waitFor } from '../helpers/agent-process.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import {
  killCoordinators,
  startCoordinator,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';

const dirs: string[] = [];
let coordinator: StartedCoordinator;
let env: NodeJS.ProcessEnv;
/** A directory outside every plan, with a key a hostile plan would like to read. */
let secrets: string;
const SECRET = `-----BEGIN OPENSSH PRIVATE KEY----- ${randomBytes(16).toString('hex')}\n`;
const SECRET_SHA = createHash('sha256').update(SECRET).digest('hex');

async function tempDir(prefix: string): Promise<string> {
  const dir = await makeTempDir(prefix);
  dirs.push(dir);
  return dir;
}

/** A plan directory with `muster.yml` and the given files. */
async function project(plan: string, files: Record<string, string> = {}): Promise<string> {
  const dir = await tempDir('muster-sec-plan-');
  await writeFile(join(dir, 'muster.yml'), plan);
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), text);
  }
  return dir;
}

function muster(args: string[], cwd: string): Promise<CliResult> {
  return runCli(args, { env, cwd, timeoutMs: 120_000 });
}

async function buildCount(): Promise<number> {
  const { body } = await coordinator.api<unknown[]>('GET', '/builds');
  return body.length;
}

async function secretUploaded(): Promise<boolean> {
  const blob = join(coordinator.dataDir, 'blobs', SECRET_SHA.slice(0, 2), SECRET_SHA);
  return stat(blob).then(
    () => true,
    () => false,
  );
}

before(async () => {
  secrets = await tempDir('muster-sec-home-');
  await writeFile(join(secrets, 'id_ed25519'), SECRET);
  const agent = await startAgent();
  coordinator = await startCoordinator();
  await coordinator.addAgent('a1', agent);
  await waitFor(
    async () => {
      const { body } = await coordinator.api<{ status: string }[]>('GET', '/agents');
      return body[0]?.status === 'connected';
    },
    30_000,
    'the agent to connect',
  );
  env = {
    MUSTER_URL: coordinator.url,
    MUSTER_TOKEN: coordinator.token,
    MUSTER_CONFIG_DIR: await tempDir('muster-sec-cli-'),
  };
});

after(async () => {
  await killCoordinators();
  await cleanup(dirs);
});

describe('muster run and symlinks out of the plan directory', () => {
  it('refuses an input that is a symlink to a file outside: exit 2, nothing uploaded, no build', async () => {
    const dir = await project(
      'tasks:\n  leak:\n    run: cat notes.txt main.c\n    inputs: [main.c, notes.txt]\n',
      { 'main.c': 'int main;\n' },
    );
    await symlink(join(secrets, 'id_ed25519'), join(dir, 'notes.txt'));
    const run = await muster(['run'], dir);
    assert.equal(run.code, 2, run.stderr);
    assert.match(
      run.stderr,
      /^muster: input "notes\.txt": symlink "notes\.txt" -> ".*muster-sec-home-.*\/id_ed25519" leads outside .*; nothing was uploaded \[INPUT_ESCAPES\]$/m,
    );
    assert.equal(await buildCount(), 0);
    assert.equal(await secretUploaded(), false);
    const mainSha = createHash('sha256').update('int main;\n').digest('hex');
    await assert.rejects(stat(join(coordinator.dataDir, 'blobs', mainSha.slice(0, 2), mainSha)));
    assert.doesNotMatch(run.stdout + run.stderr, /OPENSSH/);
  });

  it('refuses a symlinked directory that leads outside, matched by a glob or named', async () => {
    const dir = await project('tasks:\n  leak:\n    run: cat data/*/*\n    inputs: ["data/**"]\n', {
      'data/readme.txt': 'hello\n',
    });
    await symlink(secrets, join(dir, 'data', 'keys'));
    const run = await muster(['run'], dir);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /symlink "data\/keys" -> ".*muster-sec-home-[^"]*" leads outside/);
    assert.match(run.stderr, /\[INPUT_ESCAPES\]/);

    await writeFile(
      join(dir, 'muster.yml'),
      'tasks:\n  leak:\n    run: cat data/keys/id_ed25519\n    inputs: [data/keys/id_ed25519]\n',
    );
    const named = await muster(['run'], dir);
    assert.equal(named.code, 2, named.stderr);
    assert.match(named.stderr, /input "data\/keys\/id_ed25519": symlink "data\/keys"/);
    assert.equal(await buildCount(), 0);
    assert.equal(await secretUploaded(), false);
  });

  it('follows a symlink that stays inside and brings back the declared output out/x.txt', async () => {
    const dir = await project(
      'tasks:\n  copy:\n    run: test ! -L alias.txt && mkdir -p out && cat alias.txt > out/x.txt\n' +
        '    inputs: [alias.txt]\n    outputs: [out/x.txt]\n',
      { 'real/source.txt': 'from inside\n' },
    );
    await symlink('real/source.txt', join(dir, 'alias.txt'));
    const run = await muster(['run', '--json'], dir);
    assert.equal(run.code, 0, run.stderr);
    assert.equal((JSON.parse(run.stdout) as BuildView).status, 'succeeded');
    assert.equal(await readFile(join(dir, 'out', 'x.txt'), 'utf8'), 'from inside\n');
    assert.match(run.stderr, /Wrote 1 output file/);
  });
});

describe('muster run and where outputs go', () => {
  it('a plan that declares .git/hooks/post-checkout: the coordinator refuses it, nothing is written', async () => {
    const dir = await project(
      'tasks:\n  hook:\n    run: mkdir -p .git/hooks out && echo pwned > .git/hooks/post-checkout && echo x > out/x.txt\n' +
        '    outputs: [out/x.txt, .git/hooks/post-checkout]\n',
    );
    await mkdir(join(dir, '.git', 'hooks'), { recursive: true });
    const run = await muster(['run', '--json'], dir);
    assert.equal(run.code, 1, run.stderr);
    const build = JSON.parse(run.stdout) as BuildView;
    const task = build.tasks[0];
    assert.equal(task?.status, 'failed');
    assert.equal(task?.outputs.length, 0);
    assert.match(
      task?.error ?? '',
      /output path "\.git\/hooks\/post-checkout" is inside \.git\/.*\[OUTPUT_IN_GIT\]$/,
    );
    assert.deepEqual(await readdir(join(dir, '.git', 'hooks')), []);
    await assert.rejects(stat(join(dir, 'out')), { code: 'ENOENT' });
  });

  it('does not write through a directory symlink already in the plan directory', async () => {
    const dir = await project(
      'tasks:\n  make:\n    run: mkdir -p out && echo built > out/authorized_keys\n' +
        '    outputs: ["out/*"]\n',
    );
    await symlink(secrets, join(dir, 'out'));
    const run = await muster(['run'], dir);
    assert.equal(run.code, 2, run.stderr);
    assert.match(
      run.stderr,
      /output "out\/authorized_keys": "out" is a symlink \(-> ".*muster-sec-home-[^"]*"\) .* \[OUTPUT_THROUGH_SYMLINK\]$/m,
    );
    assert.deepEqual(await readdir(secrets), ['id_ed25519']);
    assert.ok((await lstat(join(dir, 'out'))).isSymbolicLink());
  });
});
