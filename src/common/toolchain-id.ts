/**
 * A compiler toolchain's id (issue 13): the sha256 of its canonical description — format,
 * driver, triple, version, glibc, and its files (path, content hash, mode) in path order. The
 * client computes it when it finds a compiler (src/cli/cc/toolchain.ts); the coordinator computes
 * it again for every toolchain registered, so an id always names the files it was made from and
 * nobody can register other programs under a known compiler's id.
 */
import { createHash } from 'node:crypto';

/** Bump when what a toolchain holds, or how its id is made, changes. */
export const TOOLCHAIN_FORMAT = 1;

/**
 * The glibc a toolchain needs, as its description says it ("2.N"): checked when it is registered
 * and again when a bundle is made of it (an agent's cc extension reads it as any "X.Y[.Z]").
 */
export const GLIBC_VERSION = /^2\.\d{1,4}$/;

export interface ToolchainDescription {
  driver: string;
  triple: string;
  version: string;
  glibc: string;
  files: readonly { path: string; sha256: string; mode: number }[];
}

/** Files in the order of their place in the toolchain (code units, as JSON keeps them). */
export function byPath(a: { path: string }, b: { path: string }): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

export function toolchainIdOf(t: ToolchainDescription): string {
  const files = [...t.files].sort(byPath).map((f) => [f.path, f.sha256, f.mode]);
  const canonical = JSON.stringify([
    TOOLCHAIN_FORMAT,
    t.driver,
    t.triple,
    t.version,
    t.glibc,
    files,
  ]);
  return createHash('sha256').update(canonical).digest('hex');
}
