/**
 * `muster completion bash|zsh` as a shell loads it: the real shells source the script and run
 * its completion function as they would at a Tab (zsh through its bashcompinit, whose
 * COMP_WORDS count from 1).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cliPath } from '../helpers/agent-process.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'muster-completion-'));
  await writeFile(join(dir, 'agent.yml'), 'agent: {}\n');
});
after(() => rm(dir, { recursive: true, force: true }));

/** What the shell's completion offers after `words` (the last one being completed). */
function complete(shell: 'bash' | 'zsh', words: string[]): Promise<string[]> {
  const quoted = words.map((w) => `'${w}'`).join(' ');
  const script = `source <(${JSON.stringify(process.execPath)} ${JSON.stringify(cliPath)} completion ${shell})
COMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; _muster; printf '%s\\n' "\${COMPREPLY[@]}"`;
  return new Promise((resolve, reject) => {
    execFile(
      shell,
      ['-c', script],
      // compinit writes its dump in the home dir: the test's own.
      { cwd: dir, timeout: 30_000, env: { ...process.env, HOME: dir, ZDOTDIR: dir } },
      (err, stdout, stderr) => {
        if (err !== null) reject(new Error(`${shell}: ${err.message}: ${stderr}`));
        else if (stderr !== '') reject(new Error(`${shell} said: ${stderr}`));
        else resolve(stdout.split('\n').filter((l) => l !== ''));
      },
    );
  });
}

describe('muster completion', () => {
  it('completes commands, subcommands, options and files in bash', async () => {
    assert.deepEqual(await complete('bash', ['muster', 'ag']), ['agent', 'agents']);
    assert.deepEqual(await complete('bash', ['muster', 'agents', 'a']), ['add', 'approve']);
    assert.deepEqual(await complete('bash', ['muster', 'agents', 'tokens', 'c']), ['create']);
    assert.deepEqual(await complete('bash', ['muster', 'agent', '--drain']), ['--drain-timeout']);
    assert.deepEqual(await complete('bash', ['muster', 'agent', '--config', 'age']), ['agent.yml']);
    assert.deepEqual(await complete('bash', ['muster', 'config', 'ch']), ['check']);
  });

  it('walks the same commands in zsh (bashcompinit), which filters what it offers itself', async () => {
    const agents = await complete('zsh', ['muster', 'agents', 'a']);
    assert.ok(agents.includes('add') && !agents.includes('coordinator'), agents.join(' '));
    const agent = await complete('zsh', ['muster', 'agent', '--drain']);
    assert.ok(agent.includes('--drain-timeout') && !agent.includes('agents'), agent.join(' '));
    assert.deepEqual(await complete('zsh', ['muster', 'agent', '--config', 'age']), ['agent.yml']);
  });

  it('refuses a shell it does not know', async () => {
    const code = await new Promise<number>((resolve) =>
      execFile(process.execPath, [cliPath, 'completion', 'fish'], (err) =>
        resolve(err === null ? 0 : typeof err.code === 'number' ? err.code : -1),
      ),
    );
    assert.equal(code, 2);
  });
});
