import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  readFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { placeInputs } from '../../src/host/inputs.js';
import { OutputWriter } from '../../src/host/output-writer.js';
import { collectOutputs } from '../../src/host/outputs.js';
import type { HostToAgent } from '../../src/protocol/host-messages.js';

const scratch = mkdtempSync(join(tmpdir(), 'muster-host-files-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let count = 0;

function dirs(): { work: string; blobs: string; outside: string } {
  const base = join(scratch, String(++count));
  const d = {
    work: join(base, 'work'),
    blobs: join(base, 'blobs'),
    outside: join(base, 'outside'),
  };
  for (const dir of Object.values(d)) mkdirSync(dir, { recursive: true });
  return d;
}

function sha256(data: string): string {
  return createHash('sha256').update(data).digest('hex');
}

function putBlob(blobDir: string, content: string): string {
  const sha = sha256(content);
  mkdirSync(join(blobDir, sha.slice(0, 2)), { recursive: true });
  writeFileSync(join(blobDir, sha.slice(0, 2), sha), content, { mode: 0o444 });
  return sha;
}

void describe('placeInputs', () => {
  void it('copies blobs (not links) and lets the last entry for a path win', async () => {
    const d = dirs();
    const one = putBlob(d.blobs, 'one');
    const two = putBlob(d.blobs, 'two');
    await placeInputs(d.work, d.blobs, [
      { path: 'x/f', sha256: one, mode: 0o644 },
      { path: 'x/f', sha256: two, mode: 0o640 },
    ]);
    assert.equal(readFileSync(join(d.work, 'x/f'), 'utf8'), 'two');
    assert.equal(statSync(join(d.work, 'x/f')).mode & 0o777, 0o640);
    assert.notEqual(
      statSync(join(d.work, 'x/f')).ino,
      statSync(join(d.blobs, two.slice(0, 2), two)).ino,
    );
  });

  void it('never writes through a symlink that leads out of the work dir', async () => {
    const d = dirs();
    symlinkSync(d.outside, join(d.work, 'link'));
    const sha = putBlob(d.blobs, 'x');
    await assert.rejects(
      placeInputs(d.work, d.blobs, [{ path: 'link/sub/f', sha256: sha, mode: 0o644 }]),
      { code: 'INVALID_PATH' },
    );
    assert.deepEqual(readdirSync(d.outside), []);
    symlinkSync(join(d.outside, 'target'), join(d.work, 'file-link'));
    await assert.rejects(
      placeInputs(d.work, d.blobs, [{ path: 'file-link', sha256: sha, mode: 0o644 }]),
      { code: 'INVALID_PATH' },
    );
    assert.ok(!existsSync(join(d.outside, 'target')));
  });

  void it('refuses a path that runs into a file, and malformed hashes', async () => {
    const d = dirs();
    const sha = putBlob(d.blobs, 'x');
    await assert.rejects(
      placeInputs(d.work, d.blobs, [
        { path: 'a', sha256: sha, mode: 0o644 },
        { path: 'a/b', sha256: sha, mode: 0o644 },
      ]),
      { code: 'INVALID_PATH' },
    );
    await assert.rejects(
      placeInputs(d.work, d.blobs, [{ path: 'c', sha256: '../../etc/passwd', mode: 0o644 }]),
      { code: 'BLOB_NOT_FOUND' },
    );
  });
});

void describe('collectOutputs', () => {
  void it('stores each file once, drops duplicates, and matches nothing quietly', async () => {
    const d = dirs();
    writeFileSync(join(d.work, 'a.txt'), 'same');
    writeFileSync(join(d.work, 'b.txt'), 'same');
    const outputs = await collectOutputs(d.work, d.blobs, ['*.txt', 'missing/**', 'gone.bin']);
    assert.deepEqual(
      outputs.map((o) => o.path),
      ['a.txt', 'b.txt'],
    );
    const sha = sha256('same');
    assert.deepEqual(readdirSync(join(d.blobs, sha.slice(0, 2))), [sha]);
    assert.deepEqual(readdirSync(join(d.blobs, '.incoming')), []);
    assert.deepEqual(await collectOutputs(d.work, d.blobs, ['*.none']), []);
  });

  void it('does not walk into symlinked directories, and skips dangling links', async () => {
    const d = dirs();
    writeFileSync(join(d.outside, 'secret.txt'), 'secret');
    symlinkSync(d.outside, join(d.work, 'ext'));
    symlinkSync(join(d.work, 'nowhere'), join(d.work, 'dangling.txt'));
    mkdirSync(join(d.work, 'real'));
    writeFileSync(join(d.work, 'real/r.txt'), 'r');
    const outputs = await collectOutputs(d.work, d.blobs, ['**/*.txt', 'ext/secret.txt']);
    assert.deepEqual(
      outputs.map((o) => o.path),
      ['real/r.txt'],
    );
  });

  void it('refuses a matching symlink to a file outside', async () => {
    const d = dirs();
    writeFileSync(join(d.outside, 'secret.txt'), 'secret');
    symlinkSync(join(d.outside, 'secret.txt'), join(d.work, 'leak'));
    await assert.rejects(collectOutputs(d.work, d.blobs, ['leak']), { code: 'OUTPUT_ESCAPES' });
    await assert.rejects(collectOutputs(d.work, d.blobs, ['le*']), { code: 'OUTPUT_ESCAPES' });
    assert.deepEqual(await collectOutputs(d.work, d.blobs, ['other']), []);
  });
});

void describe('OutputWriter', () => {
  void it('coalesces small writes per stream and keeps the order across streams', async () => {
    const sent: HostToAgent[] = [];
    const writer = new OutputWriter('t', (m) => sent.push(m));
    writer.write('stdout', 'a');
    writer.write('stdout', new Uint8Array([98]));
    writer.write('stderr', 'c');
    writer.write('stdout', 'd');
    writer.write('log', '');
    await new Promise((resolve) => setImmediate(resolve));
    writer.close();
    writer.write('stdout', 'late');
    assert.deepEqual(
      sent.map((m) => (m.t === 'output' ? [m.stream, Buffer.from(m.data).toString()] : m.t)),
      [
        ['stdout', 'ab'],
        ['stderr', 'c'],
        ['stdout', 'd'],
      ],
    );
  });
});
