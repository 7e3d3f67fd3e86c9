/** Types of the request bodies that clients build (inferred from requests.ts's schemas). */
import type { z } from 'zod';
import type { closeCompileSessionBody, compileRecord, compileSummary } from './requests.js';

export type CompileRecord = z.infer<typeof compileRecord>;
export type CompileSummary = z.infer<typeof compileSummary>;
export type CloseCompileSession = z.infer<typeof closeCompileSessionBody>;
