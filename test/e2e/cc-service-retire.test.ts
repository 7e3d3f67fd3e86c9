/**
 * The per-user compile service after an upgrade: a `muster build` of another version of the
 * same installation is refused (it hosts its build itself), and the old service exits once
 * nothing is in flight, so that the next build starts the new version's. A build of another
 * installation is refused too, but does not make the service exit (two installations used in
 * turn would restart each other).
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { installedLauncherPaths } from '../../src/cli/cc/launch-env.js';
import { environToList } from '../../src/cli/cc/shim-protocol.js';
import { encodeJsonFrame, FrameDecoder } from '../../src/protocol/framing.js';
import { cleanup, makeTempDir, waitFor } from '../helpers/agent-process.js';
import {
  compileServiceLog,
  compileServicePids,
  compileServiceRuntime,
  isService,
  stopCompileServices,
} from '../helpers/cc-service.js';
import { runCli } from '../helpers/cli.js';

after(async () => {
  await stopCompileServices();
  await cleanup();
});

/** Sends `build-open` and returns the service's first answer (bounded). */
async function askToHost(socket: string, open: object): Promise<{ type: string; reason?: string }> {
  return new Promise((resolve, reject) => {
    const client = connect(socket);
    const decoder = new FrameDecoder(1024 * 1024);
    const timer = setTimeout(() => {
      client.destroy();
      reject(new Error('no answer in 10 s'));
    }, 10_000);
    client.on('data', (chunk: Buffer) => {
      const [frame] = decoder.push(chunk);
      if (frame?.kind !== 'json') return;
      clearTimeout(timer);
      client.end();
      resolve(frame.value as { type: string; reason?: string });
    });
    client.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    client.write(encodeJsonFrame(open));
  });
}

describe('compile service: another version asks', () => {
  it('refuses it and exits once idle; another installation only is refused', async () => {
    const runtime = await compileServiceRuntime();
    const env = { XDG_RUNTIME_DIR: runtime, HOME: await makeTempDir('muster-retire-home-') };
    const started = await runCli(['cc', '--serve', '--detach'], { env, timeoutMs: 30_000 });
    assert.equal(started.code, 0, started.stderr);
    const [pid] = await compileServicePids(runtime);
    assert.ok(pid !== undefined);
    const socket = join(runtime, 'muster', 'cc.sock');
    const open = {
      type: 'build-open',
      v: 1,
      launcher: installedLauncherPaths().launcher,
      command: 'make',
      cwd: '/tmp',
      env: environToList({ PATH: process.env.PATH, ...env }),
      placement: 'auto',
      noCache: false,
      dir: await makeTempDir('muster-retire-build-'),
    };

    const elsewhere = await askToHost(socket, {
      ...open,
      version: '0.0.0-elsewhere',
      launcher: '/opt/elsewhere/dist/native/muster-cc',
    });
    assert.equal(elsewhere.type, 'build-refused');
    assert.match(elsewhere.reason ?? '', /another installation/);
    const older = await askToHost(socket, { ...open, version: '0.0.0-older' });
    assert.equal(older.type, 'build-refused');
    assert.match(older.reason ?? '', /is Muster .*, not 0\.0\.0-older/);

    await waitFor(async () => !(await isService(pid)), 30_000, 'the old service to exit');
    const exits = await compileServiceLog(runtime, 'another Muster version asked');
    assert.deepEqual(
      exits.map((line) => (line as { version?: string }).version),
      ['0.0.0-older'],
    );
  });
});
