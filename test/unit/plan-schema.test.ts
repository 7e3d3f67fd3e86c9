/**
 * The plan's JSON Schema (planJsonSchema(), schemas/plan.schema.json) checked with a real draft
 * 2020-12 validator: every example plan validates, the bad plans of the plan tests are refused on
 * the field parsePlan() names, and its glob and duration patterns never refuse what the parser
 * takes.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import fc from 'fast-check';
import { parse as parseYaml } from 'yaml';
import {
  DURATION_SCHEMA_PATTERN,
  GLOB_SCHEMA_PATTERN,
  TASK_FIELDS,
} from '../../src/api/plan/field-table.js';
import { checkGlob, parseTimeout } from '../../src/api/plan/fields.js';
import { parsePlan } from '../../src/api/plan/parse.js';
import { planJsonSchema } from '../../src/api/plan/schema.js';
import { MusterError } from '../../src/protocol/errors.js';
import { cManyPlan, MANY_PROBLEMS_PLAN } from '../helpers/plans.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));

// strict: a keyword the validator does not know, or one used where it cannot apply, is an error.
// Not strictRequired (the keys the oneOf and if/then branches require are in the task's
// properties, one level up, where that check does not look) nor strictTuples (a run: list is an
// open tuple: the program, then any number of arguments).
const ajv = new Ajv2020({
  strict: true,
  strictRequired: false,
  strictTuples: false,
  allowUnionTypes: true,
  allErrors: true,
});
const validate = ajv.compile(planJsonSchema());

/** The plan as the parser reads it: YAML 1.2 core schema, merge keys, the last of a key twice. */
function yamlValue(text: string): unknown {
  return parseYaml(text, { merge: true, uniqueKeys: false });
}

/** Where an error is, as a JSON pointer that names the key it is about. */
function location(error: ErrorObject): string {
  const params = error.params as Record<string, unknown>;
  const key =
    error.keyword === 'additionalProperties'
      ? params.additionalProperty
      : error.keyword === 'required'
        ? params.missingProperty
        : error.keyword === 'dependentRequired'
          ? params.property
          : (error.propertyName ?? params.propertyName);
  return typeof key === 'string'
    ? `${error.instancePath}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`
    : error.instancePath;
}

/** The schema's errors for a plan's text, by location; none when it validates. */
function schemaErrors(text: string): string[] {
  return validate(yamlValue(text)) ? [] : (validate.errors ?? []).map(location);
}

/** parsePlan()'s path (`tasks.t.env."A=B"`, `tasks[0].name`) as a JSON pointer. */
function pointerOf(path: string): string {
  const parts: string[] = [];
  for (const m of path.matchAll(/"((?:[^"\\]|\\.)*)"|\[(\d+)\]|([^.[\]"]+)/g)) {
    parts.push(m[1] !== undefined ? (JSON.parse(`"${m[1]}"`) as string) : (m[2] ?? m[3] ?? ''));
  }
  return parts.map((p) => `/${p.replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
}

function parserProblems(text: string): string[] {
  try {
    parsePlan(text);
  } catch (err) {
    assert.ok(err instanceof MusterError, String(err));
    return err.details?.problems as string[];
  }
  return [];
}

/** A plan with a valid task `ok` plus the given YAML for task `t` (as plan.test.ts writes them). */
function withTask(body: string): string {
  return `tasks:\n  ok:\n    run: echo ok\n  t:\n${body
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n')}\n`;
}

/** Every plan in the docs' yaml blocks, examples/, and a plan examples/c-many/generate.js writes. */
function examplePlans(): { name: string; text: string }[] {
  const doc = readFileSync(join(repo, 'docs/plans.md'), 'utf8');
  const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
  const plans = blocks
    .filter((b) => /^tasks:/m.test(b))
    .map((text, i) => ({ name: `docs/plans.md block ${i + 1}`, text }));
  const hello = 'examples/c-hello/muster.yml';
  plans.push({ name: hello, text: readFileSync(join(repo, hello), 'utf8') });
  plans.push({ name: 'c-many', text: cManyPlan() });
  return plans;
}

describe('plan JSON Schema', () => {
  it('is the file shipped in schemas/ (npm run plan-schema writes it)', () => {
    const shipped: unknown = JSON.parse(
      readFileSync(join(repo, 'schemas/plan.schema.json'), 'utf8'),
    );
    assert.deepEqual(shipped, planJsonSchema());
  });

  it('describes every key of the plan and of a task', () => {
    const schema = planJsonSchema() as {
      properties: Record<string, { description?: unknown }>;
      $defs: Record<string, { properties: Record<string, { description?: unknown }> }>;
    };
    const described = (props: Record<string, { description?: unknown }>) => {
      for (const [key, value] of Object.entries(props))
        assert.equal(typeof value.description, 'string', key);
    };
    described(schema.properties);
    assert.deepEqual(Object.keys(schema.properties), ['name', 'tasks']);
    for (const def of Object.values(schema.$defs)) described(def.properties);
    assert.deepEqual(Object.keys(schema.$defs.task?.properties ?? {}), Object.keys(TASK_FIELDS));
    assert.deepEqual(Object.keys(schema.$defs.listedTask?.properties ?? {}), [
      'name',
      ...Object.keys(TASK_FIELDS),
    ]);
  });

  it('validates every example plan', () => {
    const plans = examplePlans();
    assert.ok(plans.length >= 6, `found ${plans.length} example plans`);
    for (const { name, text } of plans) {
      assert.deepEqual(parserProblems(text), [], `${name} parses`);
      assert.deepEqual(schemaErrors(text), [], name);
    }
  });

  it('validates the list form, single strings for lists and values taken as written', () => {
    for (const text of [
      'tasks:\n  - name: a\n    run: [cc, -c, 1.50, true]\n    outputs: a.o\n  - name: b\n    uses: myext/op\n    with: { any: [json, 1] }\n    needs: a\n',
      'name: 42\ntasks:\n  x:\n    uses: core/noop\n    env: { A: 3, B: false, C: "" }\n    requires: gpu\n',
      'tasks:\n  t:\n    run: x\n    inputs: [./a.c, "src/**/*.{c,h}", "lib[0-9].so"]\n    outputs:\n    timeout: 1.5m\n    retries: 10\n',
      'tasks:\n  t:\n    run: x\n    needs:\n    cache: false\n    secrets: [TOKEN]\n  u:\n    run: y\n    needs: t\n    outputs: [o]\n    cache: true\n',
    ]) {
      assert.deepEqual(parserProblems(text), [], text);
      assert.deepEqual(schemaErrors(text), [], text);
    }
  });

  // [plan, the path parsePlan() names, where the schema reports it when not at or under that path]
  const refused: [string, string, string?][] = [
    ['', ''],
    ['- a\n- b\n', ''],
    ['just text', ''],
    ['name: x\n', 'tasks'],
    ['tasks:\n', 'tasks'],
    ['tasks: {}\n', 'tasks'],
    ['tasks: []\n', 'tasks'],
    ['tasks: 3\n', 'tasks'],
    ['name: "  "\ntasks:\n  a: { run: x }\n', 'name'],
    ['name: x\ntask:\n  a: { run: x }\n', 'task'],
    ['naem: x\ntasks:\n  a: { run: x }\n', 'naem'],
    [withTask('run: x\nneed: [ok]'), 'tasks.t.need'],
    [withTask('run: x\ndepends_on: [ok]'), 'tasks.t.depends_on'],
    [withTask('command: x'), 'tasks.t.command'],
    ['tasks:\n  a:\n    name: a\n    run: x\n', 'tasks.a.name'],
    ['tasks:\n  "bad name": { run: x }\n', 'tasks."bad name"'],
    ['tasks:\n  -x: { run: x }\n', 'tasks."-x"'],
    [`tasks:\n  ${'a'.repeat(65)}: { run: x }\n`, `tasks.${'a'.repeat(65)}`],
    ['tasks:\n  - name: a/b\n    run: x\n', 'tasks[0].name'],
    ['tasks:\n  - run: x\n', 'tasks[0]'],
    ['tasks:\n  - 5\n', 'tasks[0]'],
    [withTask('run: x\nuses: a/b'), 'tasks.t', '/tasks/t'],
    [withTask('outputs: [a]'), 'tasks.t', '/tasks/t'],
    ['tasks:\n  t:\n', 'tasks.t'],
    [withTask('run: "  "'), 'tasks.t.run'],
    [withTask('run: []'), 'tasks.t.run'],
    [withTask('run: ["", a]'), 'tasks.t.run'],
    [withTask('run: [cc, {a: 1}]'), 'tasks.t.run'],
    [withTask('run: 42'), 'tasks.t.run'],
    [withTask('run: x\nwith: {a: 1}'), 'tasks.t.with'],
    [withTask('uses: build'), 'tasks.t.uses'],
    [withTask('uses: a/b/c'), 'tasks.t.uses'],
    [withTask('uses: MyExt/build'), 'tasks.t.uses'],
    [withTask('uses: ext/-op'), 'tasks.t.uses'],
    [withTask('uses: 3'), 'tasks.t.uses'],
    [withTask('run: x\nneeds: {a: 1}'), 'tasks.t.needs'],
    [withTask('run: x\nneeds: [ok, 3]'), 'tasks.t.needs'],
    ...['""', '../a.o', 'a/../../b', '/etc/passwd', 'C:/x', '"a\\\\b"', 'out/', 'a//b', 'a/./b']
      .concat(['"!a.o"', '.', './', '"./.."', '"\\0"'])
      .map((glob): [string, string] => [withTask(`run: x\noutputs: [${glob}]`), 'tasks.t.outputs']),
    [withTask('run: x\ninputs: [../src/a.c]'), 'tasks.t.inputs'],
    [withTask('run: x\ninputs: [[a]]'), 'tasks.t.inputs'],
    [withTask(`run: x\ninputs: "${'a'.repeat(1025)}"`), 'tasks.t.inputs'],
    [withTask('run: x\nenv: [A]'), 'tasks.t.env'],
    [withTask('run: x\nenv: { A: { b: 1 } }'), 'tasks.t.env.A'],
    [withTask('run: x\nenv: { A: [1] }'), 'tasks.t.env.A'],
    [withTask('run: x\nenv: { A: }'), 'tasks.t.env.A'],
    [withTask('run: x\nenv: { "A=B": x }'), 'tasks.t.env."A=B"'],
    [withTask('run: x\ntimeout: soon'), 'tasks.t.timeout'],
    [withTask('run: x\ntimeout: 0'), 'tasks.t.timeout'],
    [withTask('run: x\ntimeout: -5'), 'tasks.t.timeout'],
    [withTask('run: x\ntimeout: 0s'), 'tasks.t.timeout'],
    [withTask('run: x\ntimeout: [1]'), 'tasks.t.timeout'],
    [withTask('run: x\ntimeout: 90'), 'tasks.t.timeout'],
    [withTask('run: x\ntimeout: "90"'), 'tasks.t.timeout'],
    [withTask('run: x\nretries: 11'), 'tasks.t.retries'],
    [withTask('run: x\nretries: -1'), 'tasks.t.retries'],
    [withTask('run: x\nretries: 1.5'), 'tasks.t.retries'],
    [withTask('run: x\nretries: "2"'), 'tasks.t.retries'],
    [withTask('run: x\nrequires: [linux, "has space"]'), 'tasks.t.requires'],
    [withTask('run: x\nrequires: [-x]'), 'tasks.t.requires'],
    [withTask('run: x\nsecrets: [lower]'), 'tasks.t.secrets'],
    [withTask('run: x\noutputs: [o]\ncache: true'), 'tasks.t.cache', '/tasks/t'],
    [withTask('run: x\ninputs: [a.c]\ncache: true'), 'tasks.t.cache', '/tasks/t'],
    [withTask('run: x\ninputs: [a.c]\noutputs: []\ncache: true'), 'tasks.t.cache', '/tasks/t'],
    [
      withTask('run: x\ninputs: [a]\noutputs: [o]\nsecrets: [TOKEN]\ncache: true'),
      'tasks.t.cache',
      '/tasks/t',
    ],
    [withTask('run: x\ninputs: [a]\noutputs: [o]\ncache: yes'), 'tasks.t.cache'],
  ];

  it('refuses the bad plans of the plan tests, on the field the parser names', () => {
    for (const [text, path, at] of refused) {
      const problems = parserProblems(text);
      assert.ok(
        problems.some((p) => (path === '' ? p.startsWith('the plan ') : p.startsWith(`${path}: `))),
        `parsePlan names ${JSON.stringify(path)} for:\n${text}\ngot: ${problems.join('\n')}`,
      );
      const errors = schemaErrors(text);
      const where = at ?? pointerOf(path);
      assert.ok(
        errors.some((e) =>
          at === undefined ? e === where || e.startsWith(`${where}/`) : e === at,
        ),
        `the schema reports ${where} for:\n${text}\ngot: ${errors.join(', ') || 'valid'}`,
      );
    }
  });

  it('reports each problem a schema can see, all at once', () => {
    const text = MANY_PROBLEMS_PLAN;
    const errors = new Set(schemaErrors(text));
    for (const at of [
      '/tasks/compile/outputs/0',
      '/tasks/link/retries',
      '/tasks/test',
      '/tasks/test/timout',
    ])
      assert.ok(errors.has(at), `${at} in ${[...errors].join(', ')}`);
  });

  it('leaves to the parser what a schema cannot say (docs/plans.md lists them)', () => {
    for (const [text, path] of [
      ['tasks:\n  a: { run: x, needs: [b] }\n  b: { run: x, needs: [a] }\n', 'tasks.a.needs'],
      [withTask('run: x\nneeds: [compil]'), 'tasks.t.needs'],
      [withTask('run: x\nneeds: [t]'), 'tasks.t.needs'],
      ['tasks:\n  - name: a\n    run: x\n  - name: a\n    run: y\n', 'tasks[1].name'],
      ['tasks:\n  a:\n    run: x\n    run: y\n', 'tasks.a'],
      [withTask('run: x\noutputs: ["{a,../b}"]'), 'tasks.t.outputs'],
      [withTask('run: x\noutputs: ["{/etc/passwd,a}"]'), 'tasks.t.outputs'],
      [withTask('run: x\noutputs: ["{a,b"]'), 'tasks.t.outputs'],
      [withTask('run: x\noutputs: ["a[z-a]"]'), 'tasks.t.outputs'],
      [withTask('run: x\noutputs: ["+(a|b)"]'), 'tasks.t.outputs'],
      [withTask(`run: x\noutputs: ["${'{a,b}'.repeat(11)}"]`), 'tasks.t.outputs'],
      [withTask('run: x\ntimeout: 30d'), 'tasks.t.timeout'],
      [withTask('uses: ext/op\nwith: .inf'), 'tasks.t.with'],
      [withTask('run: x\nenv: { TOKEN: a }\nsecrets: [TOKEN]'), 'tasks.t.env.TOKEN'],
    ] as const) {
      const problems = parserProblems(text);
      assert.ok(
        problems.some((p) => p.startsWith(`${path}: `)),
        `${path}: ${problems.join('\n')}`,
      );
      // (The duplicate key is gone once YAML is read into a value: the schema never sees it.)
      assert.deepEqual(schemaErrors(text), [], text);
    }
  });

  it('never refuses a glob checkGlob() takes, and refuses what it does without {} or ()', () => {
    const matches = ajv.compile({ type: 'string', pattern: GLOB_SCHEMA_PATTERN });
    const piece = fc.constantFrom('a', 'b', '.', '..', '/', './', '\\', '!', '*', ' ', 'C:', '\0');
    const brace = fc.constantFrom('{', ',', '}', '(', '|', ')', '+(');
    fc.assert(
      fc.property(fc.array(fc.oneof(piece, brace), { maxLength: 8 }), (parts) => {
        const glob = parts.join('');
        const parser = !('reason' in checkGlob(glob, 'here'));
        if (parser) assert.ok(matches(glob), `the schema refuses ${JSON.stringify(glob)}`);
        if (!/[{}()]/.test(glob))
          assert.equal(matches(glob), parser, `${JSON.stringify(glob)}: parser ${parser}`);
      }),
      { numRuns: 3000 },
    );
  });

  it('takes the durations parseTimeout() takes, and refuses what it refuses but the range', () => {
    const matches = ajv.compile({ type: 'string', pattern: DURATION_SCHEMA_PATTERN });
    const piece = fc.constantFrom('0', '1', '5', '.', ' ', 'ms', 's', 'm', 'h', 'd', 'x', '\n');
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 6 }), (parts) => {
        const text = parts.join('');
        const parsed = parseTimeout(text);
        if (typeof parsed === 'number') assert.ok(matches(text), JSON.stringify(text));
        else if (matches(text))
          assert.match(parsed, /must be longer than 0|must be at most 7d/, JSON.stringify(text));
      }),
      { numRuns: 3000 },
    );
  });
});
