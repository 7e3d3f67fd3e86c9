/**
 * A remote compile through a real agent (in this process) and the host it forks: the bundle
 * carries the built-in cc extension and this machine's gcc as a toolchain laid out as the
 * coordinator's BundleManager lays it out (shippedToolchain); the agent receives it over the
 * ordinary sync, materialises it in the instance's version directory, and cc/compile runs the
 * toolchain from there: the object is the local compile's, byte for byte, and a compile error
 * is a failed task with its diagnostics in the task's output.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { Agent } from '../../src/agent/agent.js';
import { compileAgentOptions } from '../../src/agent/options.js';
import { stripPrelude } from '../../src/cli/cc/directives.js';
import { discoverToolchain, type Toolchain } from '../../src/cli/cc/toolchain.js';
import { shippedToolchain } from '../../src/coordinator/bundles.js';
import { AgentClient } from '../../src/protocol/client/agent-client.js';
import { createBundle, type Bundle } from '../../src/protocol/client/bundle.js';
import { newInstanceKey } from '../../src/protocol/handshake.js';
import { checkManifest, versionIdOf } from '../../src/protocol/manifest.js';
import { runGcc } from '../helpers/gcc.js';

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('cc/compile on an agent', () => {
  let dir: string;
  let client: string;
  let agent: Agent;
  let agentClient: AgentClient;
  let gcc: Toolchain;
  let bundle: Bundle;
  const accessKey = 'cc-agent-test-access-key';

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'muster-cc-agent-'));
    client = join(dir, 'client');
    await mkdir(join(client, 'obj'), { recursive: true });
    await writeFile(join(client, 'lib.h'), '#define SCALE 7\n');
    await writeFile(
      join(client, 'scale.c'),
      '#include <string.h>\n#include "lib.h"\nint scale(const char *s) { return (int)strlen(s) * SCALE; }\n',
    );
    await writeFile(join(client, 'broken.c'), 'int broken(void) { return nope; }\n');

    gcc = await discoverToolchain('gcc');
    const shipped = shippedToolchain({
      id: gcc.id,
      files: gcc.files.map(({ path, sha256, size, mode }) => ({ path, sha256, size, mode })),
      info: { driver: gcc.driver, triple: gcc.triple, version: gcc.version, glibc: gcc.glibc },
      createdBy: 'test',
      createdAt: new Date(0).toISOString(),
    });
    assert.ok(shipped !== undefined);
    const base = await createBundle({ label: 'cc agent test' });
    const blobs = new Map(base.blobs);
    for (const file of gcc.files) {
      blobs.set(file.sha256, {
        sha256: file.sha256,
        size: file.size,
        source: { file: file.source },
      });
    }
    blobs.set(shipped.description.sha256, {
      sha256: shipped.description.sha256,
      size: shipped.description.size,
      source: { data: shipped.data },
    });
    const manifest = checkManifest({
      ...base.manifest,
      files: [...base.manifest.files, ...shipped.files, shipped.description],
    });
    bundle = { manifest, versionId: versionIdOf(manifest), blobs };

    agent = new Agent(
      compileAgentOptions({
        listen: '127.0.0.1:0',
        data: join(dir, 'agent'),
        accessKey,
        tls: false,
        taskUsers: 'off',
      }),
      pino({ level: 'silent' }),
    );
    await agent.start();
    agentClient = await AgentClient.connect({
      host: '127.0.0.1',
      port: agent.address.port,
      accessKey,
      tls: false,
      product: 'muster',
      productVersion: '0.1.0-test',
      instanceKey: newInstanceKey(),
    });
    await agentClient.sync(bundle);
  });
  after(async () => {
    agentClient.close();
    await agent.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** The client's pass, then the job on the agent; answers the result and the task's stderr. */
  async function remote(source: string, flags: string[]) {
    const pass = join(dir, `${source}.i`);
    runGcc(['-E', '-fdirectives-only', source, '-o', pass], client);
    const stripped = stripPrelude(await readFile(pass));
    assert.ok(stripped !== null);
    const text = stripped.text;
    await agentClient.putBlobs([{ sha256: sha(text), size: text.length, source: { data: text } }]);
    const object = `obj/${source.replace(/\.c$/, '.o')}`;
    const stderr: Buffer[] = [];
    const result = await agentClient.runTask(
      {
        taskId: `compile-${source}-${flags.join('')}`,
        extension: 'cc',
        operation: 'compile',
        input: {
          toolchain: gcc.id,
          driver: gcc.driver,
          args: [...flags, '-c', source, '-o', object],
          debugPrefixMaps: [{ dir: '', to: client }],
          outputs: [{ name: 'object', path: object }],
        },
        inputs: [{ path: source, sha256: sha(text), mode: 0o644 }],
        outputs: [object],
      },
      (chunk) => {
        if (chunk.stream === 'stderr') stderr.push(chunk.data);
      },
    );
    return { result, stderr: Buffer.concat(stderr).toString() };
  }

  for (const flags of [['-O2'], ['-O2', '-g']]) {
    it(`compiles with the shipped toolchain: the object of a local gcc ${flags.join(' ')}`, async () => {
      runGcc([...flags, '-c', 'scale.c', '-o', 'obj/local.o'], client);
      const local = await readFile(join(client, 'obj', 'local.o'));
      const { result, stderr } = await remote('scale.c', flags);
      assert.equal(result.status, 'succeeded', JSON.stringify(result.error) + stderr);
      assert.equal(stderr, '');
      assert.equal(result.outputs?.length, 1);
      assert.equal(result.outputs?.[0]?.path, 'obj/scale.o');
      assert.equal(result.outputs?.[0]?.sha256, sha(local), 'the same object bytes');
    });
  }

  it('fails a compile error with its exit code and the diagnostics in the output', async () => {
    const { result, stderr } = await remote('broken.c', ['-O2']);
    assert.equal(result.status, 'failed');
    assert.equal(result.exitCode, 1);
    assert.match(stderr, /broken\.c:1:\d+: error: .*nope/);
    assert.equal((result.value as { stderr?: string } | undefined)?.stderr, stderr);
  });
});
