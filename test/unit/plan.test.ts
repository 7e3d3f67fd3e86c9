import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { checkGlob } from '../../src/api/plan/fields.js';
import { closest, editDistance } from '../../src/api/plan/suggest.js';
import { parsePlan, planInputPatterns } from '../../src/api/plan/parse.js';
import { checkInputsMatch } from '../../src/coordinator/plan/inputs.js';
import { MusterError } from '../../src/protocol/errors.js';
import { cManyPlan, MANY_PROBLEMS_PLAN } from '../helpers/plans.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));

/** The problems parsePlan reports for `text` (fails the test if it parses). */
function problemsOf(text: string): string[] {
  try {
    parsePlan(text);
  } catch (err) {
    assert.ok(err instanceof MusterError, String(err));
    assert.equal(err.code, 'PLAN_INVALID');
    const problems = err.details?.problems;
    assert.ok(Array.isArray(problems));
    return problems as string[];
  }
  assert.fail(`expected PLAN_INVALID for:\n${text}`);
}

/** Asserts exactly one problem, matching `pattern`. */
function oneProblem(text: string, pattern: RegExp): void {
  const problems = problemsOf(text);
  assert.equal(problems.length, 1, `expected one problem, got:\n${problems.join('\n')}`);
  assert.match(problems[0] ?? '', pattern);
}

/** A plan with a valid task `ok` plus the given YAML for task `t`. */
function withTask(body: string): string {
  return `tasks:\n  ok:\n    run: echo ok\n  t:\n${body
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n')}\n`;
}

const example = `
name: hello
tasks:
  compile-a:
    run: cc -c a.c -o a.o
    inputs: [a.c, include/*.h]
    outputs: [a.o]
  compile-b:
    run: [cc, -c, b.c, -o, b.o]
    inputs: [./b.c, include/*.h]
    outputs: b.o
  link:
    run: cc a.o b.o -o hello
    needs: [compile-a, compile-b]
    outputs: [hello]
    env: { CFLAGS: -O2, LEVEL: 3, VERSION: 1.10, DEBUG: false }
    timeout: 10m
    retries: 2
    requires: [linux, gcc]
  custom:
    uses: myext/operation
    with: { any: json, list: [1, 2] }
`;

describe('parsePlan: valid plans', () => {
  it('parses the mapping form with every field, defaults filled', () => {
    const plan = parsePlan(example);
    assert.equal(plan.name, 'hello');
    assert.deepEqual(
      plan.tasks.map((t) => t.name),
      ['compile-a', 'compile-b', 'custom', 'link'],
    );
    const [a, b, custom, link] = plan.tasks;
    assert.deepEqual(a, {
      name: 'compile-a',
      extension: 'core',
      operation: 'run',
      input: { command: 'cc -c a.c -o a.o' },
      inputs: ['a.c', 'include/*.h'],
      outputs: ['a.o'],
      needs: [],
      env: {},
      timeoutMs: undefined,
      retries: 0,
      requires: [],
      cache: false,
    });
    assert.deepEqual(b?.input, { args: ['cc', '-c', 'b.c', '-o', 'b.o'] });
    assert.deepEqual(b?.inputs, ['b.c', 'include/*.h'], 'a leading ./ is dropped');
    assert.deepEqual(b?.outputs, ['b.o'], 'a single string is a list of one');
    assert.equal(custom?.extension, 'myext');
    assert.equal(custom?.operation, 'operation');
    assert.deepEqual(custom?.input, { any: 'json', list: [1, 2] });
    assert.deepEqual(link?.needs, ['compile-a', 'compile-b']);
    assert.deepEqual(
      link?.env,
      { CFLAGS: '-O2', LEVEL: '3', VERSION: '1.10', DEBUG: 'false' },
      'numbers and booleans are kept as written',
    );
    assert.equal(link?.timeoutMs, 600_000);
    assert.equal(link?.retries, 2);
    assert.deepEqual(link?.requires, ['linux', 'gcc']);
  });

  it('parses the list form to the same plan', () => {
    const list = `
name: hello
tasks:
  - name: link
    run: cc a.o b.o -o hello
    needs: [compile-a, compile-b]
    outputs: [hello]
    env: { CFLAGS: -O2, LEVEL: 3, VERSION: 1.10, DEBUG: false }
    timeout: 10m
    retries: 2
    requires: [linux, gcc]
  - name: compile-b
    run: [cc, -c, b.c, -o, b.o]
    inputs: [./b.c, include/*.h]
    outputs: b.o
  - name: custom
    uses: myext/operation
    with: { any: json, list: [1, 2] }
  - name: compile-a
    run: cc -c a.c -o a.o
    inputs: [a.c, include/*.h]
    outputs: [a.o]
`;
    assert.deepEqual(parsePlan(list), parsePlan(example));
  });

  it('accepts a plan without a name, and uses: without with:', () => {
    const plan = parsePlan('tasks:\n  x:\n    uses: core/noop\n');
    assert.equal(plan.name, undefined);
    assert.equal(plan.tasks[0]?.input, undefined);
    assert.equal(plan.tasks[0]?.extension, 'core');
    assert.equal(plan.tasks[0]?.operation, 'noop');
  });

  it('reads timeouts in every documented form', () => {
    const timeout = (value: string) =>
      parsePlan(`tasks:\n  x:\n    run: x\n    timeout: ${value}\n`).tasks[0]?.timeoutMs;
    assert.equal(timeout('500ms'), 500);
    assert.equal(timeout('30s'), 30_000);
    assert.equal(timeout('10m'), 600_000);
    assert.equal(timeout('1h'), 3_600_000);
    assert.equal(timeout('1.5m'), 90_000);
  });

  it('refuses a timeout without a unit (one duration syntax everywhere)', () => {
    for (const value of ['90', '1.5', '"90"']) {
      assert.throws(
        () => parsePlan(`tasks:\n  x:\n    run: x\n    timeout: ${value}\n`),
        (err: Error) =>
          /tasks\.x\.timeout: (90|1\.5) has no unit: write (90|1\.5)s or/.test(err.message),
        value,
      );
    }
  });

  it('deduplicates lists and follows YAML anchors and merge keys', () => {
    const plan = parsePlan(`
tasks:
  a: &base
    run: x
    requires: [linux, linux, gcc]
    inputs: [a.c, a.c]
  b:
    <<: *base
    run: y
    needs: [a, a]
`);
    const [a, b] = plan.tasks;
    assert.deepEqual(a?.requires, ['linux', 'gcc']);
    assert.deepEqual(a?.inputs, ['a.c']);
    assert.deepEqual(b?.input, { command: 'y' });
    assert.deepEqual(b?.requires, ['linux', 'gcc']);
    assert.deepEqual(b?.needs, ['a']);
  });

  it('puts tasks in a stable topological order: dependencies first, ties by name', () => {
    const plan = parsePlan(`
tasks:
  zeta: { run: x }
  d: { run: x, needs: [c, b] }
  c: { run: x, needs: [a] }
  b: { run: x, needs: [a] }
  a: { run: x, needs: [zeta] }
  alpha: { run: x }
  e: { run: x, needs: [alpha] }
`);
    assert.deepEqual(
      plan.tasks.map((t) => t.name),
      ['alpha', 'e', 'zeta', 'a', 'b', 'c', 'd'],
    );
    // Every task comes after what it needs, whatever the order in the text.
    const seen = new Set<string>();
    for (const task of plan.tasks) {
      for (const need of task.needs) assert.ok(seen.has(need), `${task.name} before ${need}`);
      seen.add(task.name);
    }
  });

  it('orders a long chain without recursion limits', () => {
    let text = 'tasks:\n';
    for (let i = 0; i < 5000; i++) {
      text += `  t${i}: { run: x${i > 0 ? `, needs: [t${i - 1}]` : ''} }\n`;
    }
    const plan = parsePlan(text);
    assert.equal(plan.tasks.length, 5000);
    assert.equal(plan.tasks[4999]?.name, 't4999');
  });

  it('collects the input globs of all tasks', () => {
    assert.deepEqual(planInputPatterns(parsePlan(example)), ['a.c', 'b.c', 'include/*.h']);
  });
});

describe('parsePlan: problems', () => {
  it('reports YAML syntax errors with their line', () => {
    const problems = problemsOf('tasks:\n  a:\n    run: [x\n  b: 1\n');
    assert.ok(problems.length >= 1);
    assert.match(problems[0] ?? '', /^YAML syntax: .* \(line \d+\)$/);
    oneProblem('tasks:\n  a:\n    run: "x\n', /YAML syntax: .*quote.*\(line \d+\)/);
  });

  it('refuses empty plans, non-mappings and plans without tasks', () => {
    oneProblem('', /the plan is empty/);
    oneProblem('# nothing\n', /the plan is empty/);
    oneProblem('- a\n- b\n', /must be a mapping .*\(got a list\)/);
    oneProblem('just text', /must be a mapping .*got the string "just text"/);
    oneProblem('name: x\n', /^tasks: missing/);
    oneProblem('tasks:\n', /^tasks: missing/);
    oneProblem('tasks: {}\n', /^tasks: is empty/);
    oneProblem('tasks: []\n', /^tasks: is empty/);
    oneProblem('tasks: 3\n', /^tasks: must be a mapping .* or a list/);
  });

  it('reports unknown keys and suggests the closest known one', () => {
    oneProblem(
      'name: x\ntask:\n  a: { run: x }\n',
      /^task: unknown key; did you mean "tasks"\? \(line 2\)$/,
    );
    oneProblem(
      'naem: x\ntasks:\n  a: { run: x }\n',
      /^naem: unknown key; did you mean "name"\? \(line 1\)$/,
    );
    oneProblem(
      withTask('run: x\nneed: [ok]'),
      /^tasks\.t\.need: unknown key; did you mean "needs"\?/,
    );
    oneProblem(withTask('run: x\noutput: [a]'), /^tasks\.t\.output: .*did you mean "outputs"/);
    oneProblem(withTask('run: x\nrequries: [a]'), /^tasks\.t\.requries: .*"requires"/);
    oneProblem(withTask('run: x\ndepends_on: [ok]'), /^tasks\.t\.depends_on: .*"needs"/);
    oneProblem(withTask('run: x\nenvironment: {}'), /^tasks\.t\.environment: .*"env"/);
    oneProblem(withTask('command: x'), /^tasks\.t\.command: .*"run"/);
    oneProblem(withTask('run: x\nzzzzzz: 1'), /unknown key \(known keys: run, uses, with/);
    oneProblem('tasks:\n  a:\n    name: a\n    run: x\n', /^tasks\.a\.name: not allowed here/);
  });

  it('refuses bad task names in both forms', () => {
    oneProblem(
      'tasks:\n  "bad name": { run: x }\n',
      /^tasks\."bad name": "bad name" is not a valid task name/,
    );
    oneProblem('tasks:\n  -x: { run: x }\n', /"-x" is not a valid task name/);
    oneProblem(`tasks:\n  ${'a'.repeat(65)}: { run: x }\n`, /is not a valid task name/);
    oneProblem('tasks:\n  - name: a/b\n    run: x\n', /^tasks\[0\]\.name: "a\/b" is not a valid/);
    oneProblem('tasks:\n  - run: x\n', /^tasks\[0\]: has no name/);
    oneProblem('tasks:\n  - 5\n', /^tasks\[0\]: must be a mapping/);
    // 64 characters is fine.
    assert.equal(parsePlan(`tasks:\n  ${'a'.repeat(64)}: { run: x }\n`).tasks.length, 1);
  });

  it('refuses duplicate task names in both forms', () => {
    oneProblem(
      'tasks:\n  - name: a\n    run: x\n  - name: a\n    run: y\n',
      /^tasks\[1\]\.name: duplicate task name "a" \(first at line 2\) \(line 4\)$/,
    );
    oneProblem(
      'tasks:\n  a: { run: x }\n  a: { run: y }\n',
      /^tasks: duplicate task name "a" \(first at line 2\) \(line 3\)$/,
    );
    oneProblem(
      'tasks:\n  a:\n    run: x\n    run: y\n',
      /^tasks\.a: duplicate key "run" \(first at line 3\) \(line 4\)$/,
    );
  });

  it('needs exactly one of run: and uses:', () => {
    oneProblem(withTask('run: x\nuses: a/b'), /^tasks\.t: has both run: and uses:/);
    oneProblem(withTask('outputs: [a]'), /^tasks\.t: needs run: \(a command\) or uses:/);
    oneProblem('tasks:\n  t:\n', /^tasks\.t: is empty; give it run:/);
    oneProblem(withTask('run: "  "'), /^tasks\.t\.run: is empty/);
    oneProblem(withTask('run: []'), /^tasks\.t\.run: is an empty list/);
    oneProblem(withTask('run: [cc, {a: 1}]'), /^tasks\.t\.run: item 2 must be a string/);
    oneProblem(withTask('run: 42'), /^tasks\.t\.run: must be a command line/);
    oneProblem(withTask('run: x\nwith: {a: 1}'), /^tasks\.t\.with: only goes with uses:/);
    assert.deepEqual(
      parsePlan(withTask('run: [sleep, 1.50]')).tasks[1]?.input,
      { args: ['sleep', '1.50'] },
      'numbers in argv are kept as written',
    );
  });

  it('checks uses: names', () => {
    oneProblem(withTask('uses: build'), /^tasks\.t\.uses: must be "extension\/operation"/);
    oneProblem(withTask('uses: a/b/c'), /must be "extension\/operation"/);
    oneProblem(withTask('uses: MyExt/build'), /"MyExt" is not a valid extension name/);
    oneProblem(withTask('uses: ext/-op'), /"-op" is not a valid operation name/);
    oneProblem(withTask('uses: 3'), /must be "extension\/operation"/);
    oneProblem(withTask('uses: ext/op\nwith: .inf'), /^tasks\.t\.with: .*JSON/);
  });

  it('reports unknown needs with a suggestion, self-needs, and bad lists', () => {
    oneProblem(
      'tasks:\n  compile: { run: x }\n  link:\n    run: y\n    needs: [compil]\n',
      /^tasks\.link\.needs: unknown task "compil"; did you mean "compile"\? \(line 5\)$/,
    );
    oneProblem(
      'tasks:\n  compile-a: { run: x }\n  link: { run: y, needs: [compile-c] }\n',
      /unknown task "compile-c"; did you mean "compile-a"\?/,
    );
    oneProblem(withTask('run: x\nneeds: [frobnicate]'), /unknown task "frobnicate" \(line/);
    oneProblem(withTask('run: x\nneeds: [t]'), /^tasks\.t\.needs: a task cannot need itself/);
    oneProblem(withTask('run: x\nneeds: {a: 1}'), /^tasks\.t\.needs: must be a list of strings/);
    oneProblem(withTask('run: x\nneeds: [ok, 3]'), /^tasks\.t\.needs: item 2 must be a string/);
  });

  it('names dependency cycles', () => {
    const problems = problemsOf(`
tasks:
  a: { run: x, needs: [b] }
  b: { run: x, needs: [c] }
  c: { run: x, needs: [a] }
  d: { run: x, needs: [e] }
  e: { run: x, needs: [d] }
  f: { run: x, needs: [a] }
`);
    assert.deepEqual(problems, [
      'tasks.a.needs: dependency cycle a -> b -> c -> a (line 3)',
      'tasks.d.needs: dependency cycle d -> e -> d (line 6)',
    ]);
    // A component with several cycles is reported once, by its shortest cycle from the first name.
    assert.deepEqual(
      problemsOf(
        'tasks:\n  x: { run: x, needs: [y, z] }\n  y: { run: x, needs: [x] }\n  z: { run: x, needs: [y] }\n',
      ),
      ['tasks.x.needs: dependency cycle x -> y -> x (line 2)'],
    );
  });

  it('refuses globs that are empty, escape, are absolute or do not compile', () => {
    const cases: [string, RegExp][] = [
      ['""', /has an empty pattern/],
      ['../a.o', /"\.\.\/a\.o" escapes the task's work directory/],
      ['a/../../b', /escapes/],
      ['"{a,../b}"', /escapes/],
      ['/etc/passwd', /is an absolute path/],
      ['"{/etc/passwd,a}"', /is an absolute path/],
      ['C:/x', /is an absolute path/],
      ['"a\\\\b"', /contains a backslash/],
      ['out/', /ends with "\/"; use "out\/\*\*"/],
      ['a//b', /empty path segment/],
      ['a/./b', /"\." segment/],
      ['"{a,b"', /is not a valid glob \(an unclosed/],
      ['"a[z-a]"', /is not a valid glob \(range out of order/],
      ['"+(a|b)"', /extglob/],
      ['"!a.o"', /negated/],
      ['.', /names the task's work directory itself/],
      [`"${'{a,b}'.repeat(11)}"`, /has too many \{a,b\} alternatives/],
    ];
    for (const [glob, pattern] of cases) {
      oneProblem(
        withTask(`run: x\noutputs: [${glob}]`),
        new RegExp(`^tasks\\.t\\.outputs: .*${pattern.source}`),
      );
    }
    oneProblem(
      withTask('run: x\ninputs: [../src/a.c]'),
      /^tasks\.t\.inputs: .*escapes the plan's directory/,
    );
    oneProblem(withTask('run: x\ninputs: [[a]]'), /^tasks\.t\.inputs: item 1 must be a string/);
    // Fine: globstar, classes, braces, a leading ./
    const ok = parsePlan(withTask('run: x\noutputs: ["**/*.{o,a}", "lib[0-9].so", ./bin/x]'));
    assert.deepEqual(ok.tasks[1]?.outputs, ['**/*.{o,a}', 'lib[0-9].so', 'bin/x']);
  });

  it('checks env, timeout, retries and requires', () => {
    oneProblem(withTask('run: x\nenv: [A]'), /^tasks\.t\.env: must be a mapping/);
    oneProblem(
      withTask('run: x\nenv: { A: { b: 1 } }'),
      /^tasks\.t\.env\.A: must be a string, number or boolean \(got a mapping\)/,
    );
    oneProblem(withTask('run: x\nenv: { A: [1] }'), /^tasks\.t\.env\.A: .*\(got a list\)/);
    oneProblem(withTask('run: x\nenv: { A: }'), /^tasks\.t\.env\.A: has no value/);
    oneProblem(
      withTask('run: x\nenv: { "A=B": x }'),
      /^tasks\.t\.env\."A=B": is not a valid variable name/,
    );
    oneProblem(withTask('run: x\ntimeout: soon'), /^tasks\.t\.timeout: "soon" is not a duration/);
    oneProblem(withTask('run: x\ntimeout: 0'), /^tasks\.t\.timeout: must be a positive duration/);
    oneProblem(withTask('run: x\ntimeout: -5'), /must be a positive duration/);
    oneProblem(withTask('run: x\ntimeout: 0s'), /must be longer than 0/);
    oneProblem(withTask('run: x\ntimeout: 30d'), /must be at most 7d/);
    oneProblem(withTask('run: x\ntimeout: [1]'), /must be a duration/);
    oneProblem(
      withTask('run: x\nretries: 11'),
      /^tasks\.t\.retries: must be a whole number from 0 to 10/,
    );
    oneProblem(withTask('run: x\nretries: -1'), /retries: must be a whole number/);
    oneProblem(withTask('run: x\nretries: 1.5'), /retries: must be a whole number/);
    oneProblem(
      withTask('run: x\nretries: "2"'),
      /retries: must be a whole number .*got the string "2"/,
    );
    oneProblem(
      withTask('run: x\nrequires: [linux, "has space"]'),
      /^tasks\.t\.requires: "has space" is not a valid label/,
    );
    oneProblem(withTask('run: x\nrequires: [-x]'), /"-x" is not a valid label/);
    assert.equal(parsePlan(withTask('run: x\nretries: 10')).tasks[1]?.retries, 10);
    assert.deepEqual(parsePlan(withTask('run: x\nrequires: gpu')).tasks[1]?.requires, ['gpu']);
  });

  it('reports every problem at once, in the order of the text', () => {
    const text = MANY_PROBLEMS_PLAN;
    let error: unknown;
    try {
      parsePlan(text, { sourceName: 'muster.yml' });
    } catch (err) {
      error = err;
    }
    assert.ok(error instanceof MusterError);
    assert.equal(error.code, 'PLAN_INVALID');
    const problems = error.details?.problems;
    assert.deepEqual(problems, [
      'tasks.compile.outputs: "../a.o" escapes the task\'s work directory (".." segment) (line 5)',
      'tasks.link.needs: unknown task "compil"; did you mean "compile"? (line 8)',
      'tasks.link.retries: must be a whole number from 0 to 10 (got the number 99) (line 9)',
      'tasks.test: has both run: and uses:; give only one (line 10)',
      'tasks.test.timout: unknown key; did you mean "timeout"? (line 13)',
    ]);
    assert.equal(
      error.message,
      `Plan muster.yml has 5 problems:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
    assert.match(problemsOf('tasks:\n  a:\n    run: [x]\n    uses: 1\n')[0] ?? '', /^tasks\.a/);
  });

  it('says "1 problem" and lists it', () => {
    assert.throws(() => parsePlan('tasks: []'), {
      code: 'PLAN_INVALID',
      message:
        'The plan has 1 problem:\n  - tasks: is empty: a plan needs at least one task (line 1)',
    });
  });

  it('refuses plans over 1 MiB or over 10,000 tasks', () => {
    const big = `tasks:\n  a:\n    run: x\n# ${'x'.repeat(1024 * 1024)}\n`;
    oneProblem(big, /the plan is \d+ bytes; the limit is 1048576 \(1 MiB\)/);
    let many = 'tasks:\n';
    for (let i = 0; i <= 10_000; i++) many += `- {name: t${i}, run: x}\n`;
    oneProblem(many, /^tasks: the plan has 10001 tasks; the limit is 10000$/);
  });

  it('is not fooled by alias expansion bombs', () => {
    let text = 'a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n';
    for (let i = 1; i < 12; i++) {
      text += `a${i}: &a${i} [${Array(10)
        .fill(`*a${i - 1}`)
        .join(', ')}]\n`;
    }
    text += 'tasks:\n  t: { run: x }\n';
    const problems = problemsOf(text);
    assert.match(problems.join('\n'), /alias/i);
  });
});

describe('parsePlan: cache', () => {
  it('takes cache: true on a task that declares what it reads and makes', () => {
    const plan = parsePlan(
      'tasks:\n  gen:\n    run: x\n    inputs: [a.c]\n    outputs: [a.o]\n    cache: true\n' +
        '  use:\n    run: y\n    needs: [gen]\n    outputs: [b]\n    cache: true\n' +
        '  off:\n    run: z\n    cache: false\n',
    );
    assert.deepEqual(
      plan.tasks.map((t) => [t.name, t.cache]),
      [
        ['gen', true],
        ['off', false],
        ['use', true],
      ],
    );
  });

  it('refuses a cached task without declared inputs or outputs, or a value not a boolean', () => {
    oneProblem(
      withTask('run: x\noutputs: [o]\ncache: true'),
      /^tasks\.t\.cache: a cached task must declare what it reads: give it inputs: \(or needs:\).*\(line 7\)$/,
    );
    oneProblem(
      withTask('run: x\ninputs: [a.c]\ncache: true'),
      /^tasks\.t\.cache: a cached task must declare outputs:/,
    );
    assert.equal(problemsOf(withTask('run: x\ncache: true')).length, 2);
    oneProblem(
      withTask('run: x\ninputs: [a]\noutputs: [o]\ncache: yes'),
      /^tasks\.t\.cache: must be true or false \(got the string "yes"\)/,
    );
  });
});

describe('plan helpers', () => {
  it('measures edit distance with transpositions and a limit', () => {
    assert.equal(editDistance('needs', 'needs'), 0);
    assert.equal(editDistance('need', 'needs'), 1);
    assert.equal(editDistance('requries', 'requires'), 1);
    assert.equal(editDistance('kitten', 'sitting'), 3);
    assert.equal(editDistance('abcdef', 'uvwxyz', 2), 3);
    assert.equal(closest('compil', ['compile', 'link']), 'compile');
    assert.equal(closest('tset', ['build', 'test']), 'test');
    assert.equal(closest('xyz', ['build', 'test']), undefined);
  });

  it('normalises good globs and explains bad ones', () => {
    assert.deepEqual(checkGlob('././a/*.c', 'here'), { pattern: 'a/*.c' });
    assert.deepEqual(checkGlob('../x', 'here'), { reason: '"../x" escapes here (".." segment)' });
  });
});

describe('examples', () => {
  it('parses examples/c-hello/muster.yml', () => {
    const text = readFileSync(join(repo, 'examples/c-hello/muster.yml'), 'utf8');
    const plan = parsePlan(text, { sourceName: 'examples/c-hello/muster.yml' });
    assert.equal(plan.name, 'c-hello');
    const names = plan.tasks.map((t) => t.name);
    assert.deepEqual(names, [
      'compile-greet',
      'compile-main',
      'compile-math',
      'compile-util',
      'link',
      'test',
    ]);
    const link = plan.tasks[4];
    assert.deepEqual(link?.outputs, ['hello']);
    assert.deepEqual(planInputPatterns(plan), [
      'expected.txt',
      'greet.c',
      'include/*.h',
      'main.c',
      'math.c',
      'util.c',
    ]);
  });

  it('parses the plan examples/c-many/generate.js writes', () => {
    const plan = parsePlan(cManyPlan());
    assert.equal(plan.tasks.length, 5 + 1 + 2);
    assert.deepEqual(plan.tasks.at(-2)?.needs.length, 6);
    assert.equal(plan.tasks.at(-1)?.name, 'test');
  });
});

describe('docs/plans.md', () => {
  it('has only valid example plans', () => {
    const doc = readFileSync(join(repo, 'docs/plans.md'), 'utf8');
    const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
    const plans = blocks.filter((b) => /^tasks:/m.test(b));
    assert.ok(plans.length >= 4, `found ${plans.length} example plans`);
    for (const plan of plans) assert.doesNotThrow(() => parsePlan(plan), plan);
  });

  it('shows the error format parsePlan produces', () => {
    const doc = readFileSync(join(repo, 'docs/plans.md'), 'utf8');
    const shown = /```\n(Plan muster\.yml has 5 problems:[\s\S]*?)\n```/.exec(doc)?.[1];
    const text = MANY_PROBLEMS_PLAN;
    assert.throws(() => parsePlan(text, { sourceName: 'muster.yml' }), { message: shown });
  });
});

describe('checkInputsMatch', () => {
  const plan = parsePlan(`tasks:
  compile:
    run: cc -c src/main.c
    inputs: [src/**/*.c, include/config.h, .env]
  link:
    run: cc main.o
    needs: [compile]
`);
  const file = (path: string) => ({ path, sha256: 'a'.repeat(64), size: 1, mode: 0o644 });

  it('accepts files that match every input pattern, dot files included', () => {
    checkInputsMatch(plan, [file('src/a/main.c'), file('include/config.h'), file('.env')]);
  });

  it('lists every pattern that matches no uploaded file', () => {
    assert.throws(
      () => checkInputsMatch(plan, [file('src/main.h'), file('include/config.h')]),
      (err: unknown) => {
        assert.ok(err instanceof MusterError);
        assert.equal(err.code, 'PLAN_INVALID');
        assert.deepEqual(err.details?.problems, [
          'task "compile": input "src/**/*.c" matches none of the uploaded files',
          'task "compile": input ".env" matches none of the uploaded files',
        ]);
        assert.match(err.message, /2 inputs match no uploaded file \(2 uploaded\)/);
        return true;
      },
    );
  });
});
