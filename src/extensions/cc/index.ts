/**
 * The built-in `cc` extension: remote compiles for `muster build` / `muster cc` (design §2, §3).
 * Shipped to agents like `core`, as a folder of its own: it imports only Node built-ins and its
 * own files. The toolchains it runs come in the same bundle, under `toolchains/` beside
 * `extensions/` (src/coordinator/bundles.ts), so they are found from this file's own place.
 */
import { fileURLToPath } from 'node:url';
import type { Operation } from '../../host/extensions.js';
import { compileOperation } from './compile.js';

/** `<bundle>/toolchains/`: this file is `<bundle>/extensions/cc/index.js`. */
export const bundleToolchains = fileURLToPath(new URL('../../toolchains/', import.meta.url));

export const operations: Record<string, Operation> = {
  compile: compileOperation({ toolchainsRoot: bundleToolchains }),
};
