/**
 * The keys a plan and its tasks may have, each with its description and its shape in JSON Schema:
 * the one list that the parser's unknown-key check (parse.ts, check-task.ts) and the published
 * schema (schema.ts, planJsonSchema()) both read. The shapes are built from the same patterns and
 * limits the checks use (names.ts, limits.ts, secret-names.ts); what a schema cannot say (a need
 * names a task of the plan, no cycles, brace alternatives of a glob, the YAML itself) is left to
 * the parser, which checks everything again.
 */
import { SECRET_NAME_PATTERN, SECRET_NAME_TEXT } from '../secret-names.js';
import { PLAN_LIMITS } from './limits.js';
import {
  EXTENSION_NAME_PATTERN,
  LABEL_PATTERN,
  OPERATION_NAME_PATTERN,
  TASK_NAME_PATTERN,
} from './names.js';

/** A JSON Schema (draft 2020-12) as plain data. */
export type JsonSchema = { [keyword: string]: unknown };

export interface FieldDefinition {
  /** What the key is for, as an editor shows it on hover. */
  description: string;
  /** Its shape, without the description. */
  schema: JsonSchema;
}

/** A regex's text without its anchors, to put two of them in one pattern. */
function unanchored(pattern: RegExp): string {
  return pattern.source.replace(/^\^/, '').replace(/\$$/, '');
}

/**
 * What checkGlob() (fields.ts) refuses that a regex can see on the pattern as written: empty, a
 * backslash or NUL, negated (`!x`), and after leading `./`s are dropped: nothing or `.` left,
 * absolute (`/x`, `C:x`), an empty segment (`a//b`), a trailing `/`, a `.` or `..` segment. Not
 * here (the parser's alone): `..` or an absolute path inside `{a,b}`, extglobs, globs that do not
 * compile. A property test (plan-schema.test.ts) checks it never refuses what checkGlob() takes.
 */
export const GLOB_SCHEMA_PATTERN =
  '^(?!\\s*$)(?![\\s\\S]*[\\\\\\u0000])(?!!)(?:\\./)*(?!\\.?$)(?![A-Za-z]:|/)' +
  '(?![\\s\\S]*//)(?![\\s\\S]*/$)(?!(?:[\\s\\S]*/)?\\.\\.?(?:/|$))';

/** A positive duration with its unit, as parseTimeout() (fields.ts) reads it. */
export const DURATION_SCHEMA_PATTERN =
  '^\\s*(?!0*(?:\\.0*)?(?:ms|s|m|h|d)\\s*$)\\d+(?:\\.\\d+)?(?:ms|s|m|h|d)\\s*$';

/** What YAML gives a scalar as: the parser takes numbers and booleans as written. */
const SCALAR = ['string', 'number', 'boolean'];

/** A list of `item` strings, or one string for a list of one; null (nothing written) is empty. */
function stringList(item: JsonSchema, description: string): JsonSchema {
  const { type: _type, ...stringKeywords } = item;
  return {
    type: ['array', 'string', 'null'],
    ...stringKeywords,
    items: { type: 'string', ...stringKeywords, description },
  };
}

const taskName = { type: 'string', pattern: TASK_NAME_PATTERN.source };
const glob = { type: 'string', maxLength: PLAN_LIMITS.maxGlobLength, pattern: GLOB_SCHEMA_PATTERN };

/** The keys of the plan itself. */
export const PLAN_FIELDS = {
  name: {
    description: 'A label for the build, up to 200 characters. Optional.',
    schema: { type: [...SCALAR, 'null'], pattern: '\\S', maxLength: 200 },
  },
  tasks: {
    description:
      'The tasks: a mapping of task name to task (the usual form), or a list of tasks that each have name:. At least one.',
    // The two forms without oneOf: object keywords only apply to a mapping, array ones to a list.
    schema: {
      type: ['object', 'array'],
      minProperties: 1,
      maxProperties: PLAN_LIMITS.maxTasks,
      propertyNames: {
        ...taskName,
        description:
          'A task name: 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit.',
      },
      additionalProperties: { $ref: '#/$defs/task' },
      minItems: 1,
      maxItems: PLAN_LIMITS.maxTasks,
      items: { $ref: '#/$defs/listedTask' },
    },
  },
} as const satisfies Record<string, FieldDefinition>;

/** The name of a task in the list form of `tasks:` (in the mapping form the key is the name). */
export const LISTED_TASK_NAME: FieldDefinition = {
  description:
    'The task name (list form only): 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit; unique in the plan.',
  schema: { type: SCALAR, pattern: TASK_NAME_PATTERN.source },
};

/** The keys of one task, in the order the parser lists them when a key is unknown. */
export const TASK_FIELDS = {
  run: {
    description:
      'A command line (run through /bin/sh -c) or an argv list (no shell; the first item is looked up in PATH). Exactly one of run: and uses: is required.',
    schema: {
      type: ['string', 'array'],
      pattern: '\\S',
      minItems: 1,
      prefixItems: [
        { type: SCALAR, minLength: 1, description: 'The program: its name or path, not empty.' },
      ],
      items: { type: SCALAR, description: 'An argument, taken as written.' },
    },
  },
  uses: {
    description:
      'An extension operation, "extension/operation" (e.g. "myext/build"), run instead of a command. Exactly one of run: and uses: is required.',
    schema: {
      type: 'string',
      pattern: `^${unanchored(EXTENSION_NAME_PATTERN)}/${unanchored(OPERATION_NAME_PATTERN)}$`,
    },
  },
  with: {
    description: "The operation's input, any JSON value. Only with uses:.",
    schema: {},
  },
  inputs: {
    description:
      "Globs of files from the plan's directory: uploaded and placed in the task's work dir at the same paths. A list, or one string.",
    schema: stringList(glob, "A glob relative to the plan's directory."),
  },
  outputs: {
    description:
      "Globs of files to keep from the task's work dir after it succeeds. A list, or one string.",
    schema: stringList(glob, "A glob relative to the task's work dir."),
  },
  needs: {
    description:
      "Tasks that must succeed first; their outputs are placed in this task's work dir. A list, or one string.",
    schema: stringList(taskName, 'The name of another task of this plan.'),
  },
  env: {
    description:
      'Environment variables for the task: a mapping of names to values (numbers and booleans are taken as written).',
    schema: {
      type: ['object', 'null'],
      propertyNames: {
        pattern: '^[^=\\u0000]+$',
        description: 'A variable name: not empty, no "=".',
      },
      additionalProperties: {
        type: SCALAR,
        pattern: '^[^\\u0000]*$',
        description: 'The value: a string, number or boolean; write "" for an empty string.',
      },
    },
  },
  timeout: {
    description:
      'How long one attempt may run before it is killed: a duration with its unit (500ms, 30s, 10m, 1h, 1d), at most 7d. None by default.',
    schema: { type: ['string', 'null'], pattern: DURATION_SCHEMA_PATTERN },
  },
  retries: {
    description: `Extra attempts after a failure, 0 to ${PLAN_LIMITS.maxRetries} (default 0).`,
    schema: { type: ['integer', 'null'], minimum: 0, maximum: PLAN_LIMITS.maxRetries },
  },
  requires: {
    description: 'Labels an agent must all have to run the task. A list, or one string.',
    schema: stringList(
      { type: 'string', pattern: LABEL_PATTERN.source },
      'A label: 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit.',
    ),
  },
  cache: {
    description:
      'true: skip the task when the shared cache knows its outputs for the same inputs. A cached task declares inputs: (or needs:) and outputs:, and has no secrets:.',
    schema: { type: ['boolean', 'null'] },
  },
  secrets: {
    description:
      'Names of secrets (set by an admin on the coordinator) given to the task as environment variables of the same names. A list, or one string.',
    schema: stringList(
      { type: 'string', pattern: SECRET_NAME_PATTERN.source },
      `A secret's name: ${SECRET_NAME_TEXT}.`,
    ),
  },
} as const satisfies Record<string, FieldDefinition>;

export const PLAN_KEYS: readonly string[] = Object.keys(PLAN_FIELDS);
export const TASK_KEYS: readonly string[] = Object.keys(TASK_FIELDS);
