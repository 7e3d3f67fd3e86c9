// `npm run plan-schema` (after `npm run build`): writes schemas/plan.schema.json, the plan
// language's JSON Schema (src/api/plan/schema.ts, planJsonSchema()), formatted as prettier would.
// The file is committed and shipped in the release, so editors can point a plan at it without a
// coordinator; test/unit/plan-schema.test.ts fails when it differs from what the code generates.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import prettier from 'prettier';
import { planJsonSchema } from '../dist/src/api/plan/schema.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const file = join(root, 'schemas/plan.schema.json');
const options = (await prettier.resolveConfig(file)) ?? {};
const text = await prettier.format(JSON.stringify(planJsonSchema()), {
  ...options,
  filepath: file,
});
mkdirSync(dirname(file), { recursive: true });
writeFileSync(file, text);
console.log(file);
