/**
 * Toolchains by hash (src/cli/cc/toolchain.ts) against this machine's real gcc and g++ (CI
 * installs them: .ci/run): what is found, and that the files alone, copied to another directory
 * and run with no PATH, compile to the very same object bytes as the installed compiler.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import {
  chmod,
  copyFile,
  mkdir,
  mkdtemp,
  readFile,
  rm,
  writeFile,
  symlink,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  discoverToolchain,
  newestGlibcMinor,
  toolchainEnvironment,
  toolchainId,
  ToolchainUnshippable,
  type Toolchain,
} from '../../src/cli/cc/toolchain.js';

const run = promisify(execFile);

async function materialise(toolchain: Toolchain, root: string): Promise<void> {
  for (const file of toolchain.files) {
    const to = join(root, file.path);
    await mkdir(dirname(to), { recursive: true });
    await copyFile(file.source, to);
    await chmod(to, file.mode);
  }
}

const C_SOURCE = `
static int table[16];
int scale(int x) { for (int i = 0; i < 16; i++) table[i] = i * x; return table[x & 15] + 3; }
`;
const CXX_SOURCE = `
template <typename T> struct Box { T v; T twice() const { return v + v; } };
int twice(int x) { return Box<int>{x}.twice(); }
`;

describe('toolchains by hash', () => {
  let dir: string;
  let gcc: Toolchain;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'muster-toolchain-'));
    gcc = await discoverToolchain('gcc');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("finds gcc's driver, cc1, its assembler in the tool dir, and non-glibc libraries", () => {
    const paths = gcc.files.map((f) => f.path);
    assert.match(gcc.driver, /^bin\//);
    assert.ok(paths.includes(gcc.driver));
    assert.ok(
      paths.includes(`lib/gcc/${gcc.triple}/${gcc.version.split('.')[0]}/cc1`) ||
        paths.some((p) => p.startsWith(`lib/gcc/${gcc.triple}/`) && p.endsWith('/cc1')),
      `cc1 among ${paths.join(', ')}`,
    );
    assert.ok(paths.includes(`${gcc.triple}/bin/as`));
    assert.ok(
      paths.some((p) => p.startsWith('lib/shared/')),
      'cc1 loads libraries beyond glibc',
    );
    assert.ok(!paths.some((p) => /^lib\/shared\/(libc|libm|ld-linux[^/]*)\.so/.test(p)));
    assert.match(gcc.glibc, /^2\.\d+$/);
    assert.match(gcc.id, /^[0-9a-f]{64}$/);
    for (const f of gcc.files) assert.match(f.sha256, /^[0-9a-f]{64}$/);
  });

  it('has the same id every time, and another when a file differs', async () => {
    const again = await discoverToolchain('gcc');
    assert.equal(again.id, gcc.id);
    const { id: _id, ...description } = gcc;
    const changed = {
      ...description,
      files: description.files.map((f, i) => (i === 0 ? { ...f, sha256: '0'.repeat(64) } : f)),
    };
    assert.notEqual(toolchainId(changed), gcc.id);
    // The order files were found in does not matter.
    assert.equal(toolchainId({ ...description, files: [...description.files].reverse() }), gcc.id);
  });

  for (const [language, compiler, source] of [
    ['C', 'gcc', C_SOURCE],
    ['C++', 'g++', CXX_SOURCE],
  ] as const) {
    it(`compiles ${language} from the copied files alone, byte for byte as the installed ${compiler}`, async () => {
      const toolchain = compiler === 'gcc' ? gcc : await discoverToolchain(compiler);
      const root = join(dir, `${compiler}-${toolchain.id.slice(0, 12)}`);
      await materialise(toolchain, root);
      const file = compiler === 'gcc' ? 'unit.c' : 'unit.cc';
      const work = join(dir, `work-${compiler}`);
      await mkdir(work, { recursive: true });
      await writeFile(join(work, file), source);
      const flags = ['-O2', '-c', file];
      await run(compiler, [...flags, '-o', 'local.o'], { cwd: work });
      await run(join(root, toolchain.driver), [...flags, '-o', 'shipped.o'], {
        cwd: work,
        env: toolchainEnvironment(root),
      });
      // The copies ran, not the installed programs the driver would fall back to.
      const program = compiler === 'gcc' ? 'cc1' : 'cc1plus';
      for (const name of [program, 'as']) {
        const { stdout } = await run(join(root, toolchain.driver), [`-print-prog-name=${name}`], {
          env: toolchainEnvironment(root),
        });
        assert.ok(stdout.trim().startsWith(root), `${name} is ${stdout.trim()}, not under ${root}`);
      }
      const local = await readFile(join(work, 'local.o'));
      const shipped = await readFile(join(work, 'shipped.o'));
      assert.ok(local.length > 0);
      assert.ok(local.equals(shipped), 'the shipped toolchain made a different object');
    });
  }

  it('refuses what is not a native compiler driver (a script standing in for one)', async () => {
    const bin = join(dir, 'fake-bin');
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, 'wrapped-cc'), '#!/bin/sh\nexec gcc "$@"\n', { mode: 0o755 });
    await symlink(join(bin, 'wrapped-cc'), join(bin, 'cc-link'));
    await assert.rejects(
      discoverToolchain('cc-link', bin),
      (err: unknown) =>
        err instanceof ToolchainUnshippable && /not a native program/.test(err.message),
    );
    await assert.rejects(
      discoverToolchain('no-such-compiler', bin),
      (err: unknown) =>
        err instanceof ToolchainUnshippable && /no no-such-compiler on PATH/.test(err.message),
    );
  });

  it('reads the newest GLIBC_2.N a file references', () => {
    assert.equal(newestGlibcMinor(Buffer.from('x\0GLIBC_2.2.5\0GLIBC_2.34\0GLIBC_2.4\0')), 34);
    assert.equal(newestGlibcMinor(Buffer.from('nothing here')), 0);
  });
});
