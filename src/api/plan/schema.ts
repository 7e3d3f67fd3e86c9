/**
 * planJsonSchema(): the plan language as a JSON Schema (draft 2020-12), built from the field table
 * (field-table.ts), for editors (the yaml-language-server modeline in docs/plans.md) and other
 * tools. The coordinator serves it at /api/v1/plan.schema.json; `node scripts/plan-schema.js`
 * writes schemas/plan.schema.json, shipped in the release. A plan the schema takes may still be
 * refused by parsePlan() for what a schema cannot say (docs/plans.md, "The JSON Schema").
 */
import {
  LISTED_TASK_NAME,
  PLAN_FIELDS,
  TASK_FIELDS,
  type FieldDefinition,
  type JsonSchema,
} from './field-table.js';

function properties(fields: Record<string, FieldDefinition>): Record<string, JsonSchema> {
  return Object.fromEntries(
    Object.entries(fields).map(([key, field]) => [
      key,
      { description: field.description, ...field.schema },
    ]),
  );
}

/** A list field written with at least one item (a string is a list of one). */
const someOf = (key: string): JsonSchema => ({
  required: [key],
  properties: { [key]: { type: ['string', 'array'], minItems: 1 } },
});

/** The rules between a task's keys that check-task.ts applies and a schema can say. */
const TASK_RULES: JsonSchema = {
  // Exactly one of run: and uses:.
  oneOf: [{ required: ['run'] }, { required: ['uses'] }],
  dependentRequired: { with: ['uses'] },
  // cache: true needs what the task reads and makes, and no secrets (checkCache()).
  if: { required: ['cache'], properties: { cache: { const: true } } },
  then: {
    allOf: [{ anyOf: [someOf('inputs'), someOf('needs')] }, someOf('outputs')],
    not: someOf('secrets'),
  },
};

const TASK_DESCRIPTION =
  'A task: run: (a command) or uses: (an extension operation), with the files it reads and makes, the tasks it needs and where it may run.';

/** The JSON Schema of a plan (muster.yml). The same value every call: plain data, no version. */
export function planJsonSchema(): JsonSchema {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'Muster build plan',
    description:
      'A Muster build plan (muster.yml): a graph of tasks that the coordinator runs on its agents. See docs/plans.md.',
    type: 'object',
    required: ['tasks'],
    additionalProperties: false,
    properties: properties(PLAN_FIELDS),
    $defs: {
      task: {
        description: TASK_DESCRIPTION,
        type: 'object',
        additionalProperties: false,
        properties: properties(TASK_FIELDS),
        ...TASK_RULES,
      },
      listedTask: {
        description: `${TASK_DESCRIPTION} In the list form of tasks: it has a name:.`,
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: properties({ name: LISTED_TASK_NAME, ...TASK_FIELDS }),
        ...TASK_RULES,
      },
    },
  };
}
