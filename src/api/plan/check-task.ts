/**
 * checkTask(): one task entry of a plan, field by field, into a PlanTask, adding every problem it
 * finds to the list (and returning the task even with problems, so needs and cycles are checked).
 */
import {
  findNonJson,
  globList,
  isObject,
  nameList,
  parseTimeout,
  type TaskEntry,
} from './fields.js';
import { secretNameProblem } from '../secret-names.js';
import { TASK_KEYS } from './field-table.js';
import { PLAN_LIMITS } from './limits.js';
import { EXTENSION_NAME_PATTERN, LABEL_PATTERN, OPERATION_NAME_PATTERN } from './names.js';
import { describe, joinPath, type Problems } from './problems.js';
import { suggestKey, unknownKeyText } from './suggest.js';
import type { PlanTask } from './types.js';
import type { Source } from './yaml-source.js';

export function checkTask(
  entry: TaskEntry,
  source: Source,
  problems: Problems,
): PlanTask | undefined {
  const { display: d, ast, value, listForm } = entry;
  const at = (key: string | number, ...more: (string | number)[]) =>
    source.line([...ast, key, ...more]);
  if (!isObject(value)) {
    problems.add(
      d,
      value === null || value === undefined
        ? 'is empty; give it run: (a command) or uses: (an extension operation)'
        : `must be a mapping with run: or uses: (got ${describe(value)})`,
      source.line(ast),
    );
    return undefined;
  }
  const known: readonly string[] = listForm ? ['name', ...TASK_KEYS] : TASK_KEYS;
  const suggested = new Set<string>();
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue;
    if (key === 'name' && !listForm) {
      problems.add(
        `${d}.name`,
        'not allowed here: in the mapping form the key is the name',
        at(key),
      );
    } else {
      const suggestion = suggestKey(key, known);
      if (suggestion !== undefined) suggested.add(suggestion);
      problems.add(joinPath(d, key), unknownKeyText(suggestion, known), at(key));
    }
  }

  // run: / uses:
  let extension = 'core';
  let operation = 'run';
  let input: unknown;
  const hasRun = value.run !== undefined && value.run !== null;
  const hasUses = value.uses !== undefined && value.uses !== null;
  if (hasRun && hasUses) {
    problems.add(d, 'has both run: and uses:; give only one', source.line(ast));
  } else if (!hasRun && !hasUses && !suggested.has('run') && !suggested.has('uses')) {
    // (A misspelt run: or uses: is reported above.)
    problems.add(d, 'needs run: (a command) or uses: (an extension operation)', source.line(ast));
  }
  if (hasRun) {
    const run = value.run;
    if (typeof run === 'string') {
      if (run.trim() === '') problems.add(`${d}.run`, 'is empty', at('run'));
      input = { command: run };
    } else if (Array.isArray(run)) {
      const args: string[] = [];
      run.forEach((item, i) => {
        const arg = source.scalarText([...ast, 'run', i], item);
        if (arg === undefined) {
          problems.add(
            `${d}.run`,
            `item ${i + 1} must be a string (got ${describe(item)})`,
            at('run', i),
          );
        } else {
          args.push(arg);
        }
      });
      if (run.length === 0) problems.add(`${d}.run`, 'is an empty list', at('run'));
      else if (args[0] === '')
        problems.add(`${d}.run`, 'the program (first item) is empty', at('run', 0));
      input = { args };
    } else {
      problems.add(
        `${d}.run`,
        `must be a command line (a string) or an argv list of strings (got ${describe(run)})`,
        at('run'),
      );
    }
  }
  if (hasUses) {
    const uses = value.uses;
    const match = typeof uses === 'string' ? /^([^/]*)\/([^/]*)$/.exec(uses) : null;
    if (!match) {
      problems.add(
        `${d}.uses`,
        `must be "extension/operation", e.g. "myext/build" (got ${describe(uses)})`,
        at('uses'),
      );
    } else {
      const [, ext = '', op = ''] = match;
      if (!EXTENSION_NAME_PATTERN.test(ext)) {
        problems.add(
          `${d}.uses`,
          `"${ext}" is not a valid extension name (1-64 lower-case letters, digits, ".", "_" or "-")`,
          at('uses'),
        );
      }
      if (!OPERATION_NAME_PATTERN.test(op)) {
        problems.add(
          `${d}.uses`,
          `"${op}" is not a valid operation name (1-64 letters, digits, ".", "_" or "-")`,
          at('uses'),
        );
      }
      extension = ext;
      operation = op;
    }
  }
  if (value.with !== undefined) {
    if (!hasUses) {
      problems.add(`${d}.with`, 'only goes with uses: (run: takes no with:)', at('with'));
    } else {
      const nonJson = findNonJson(value.with, '');
      if (nonJson !== undefined) problems.add(`${d}.with`, nonJson, at('with'));
      // A copy: YAML aliases can make two tasks share one object.
      input = structuredClone(value.with);
    }
  }

  const inputs = globList(entry, 'inputs', "the plan's directory", source, problems);
  const outputs = globList(entry, 'outputs', "the task's work directory", source, problems);

  const needs = nameList(entry, 'needs', source, problems, () => undefined);
  const requires = nameList(entry, 'requires', source, problems, (label) =>
    LABEL_PATTERN.test(label)
      ? undefined
      : `${JSON.stringify(label)} is not a valid label (1-64 letters, digits, ".", "_" or "-", starting with a letter or digit)`,
  );

  const env: Record<string, string> = {};
  if (value.env !== undefined && value.env !== null) {
    if (!isObject(value.env)) {
      problems.add(
        `${d}.env`,
        `must be a mapping of names to values (got ${describe(value.env)})`,
        at('env'),
      );
    } else {
      for (const [key, raw] of Object.entries(value.env)) {
        const path = joinPath(`${d}.env`, key);
        if (key === '' || key.includes('=') || key.includes('\0')) {
          problems.add(
            path,
            'is not a valid variable name (empty, or contains "=" or NUL)',
            at('env', key),
          );
          continue;
        }
        if (raw === null || raw === undefined) {
          problems.add(path, 'has no value; write "" for an empty string', at('env', key));
          continue;
        }
        const text = source.scalarText([...ast, 'env', key], raw);
        if (text === undefined) {
          problems.add(
            path,
            `must be a string, number or boolean (got ${describe(raw)})`,
            at('env', key),
          );
        } else if (text.includes('\0')) {
          problems.add(path, 'contains a NUL character', at('env', key));
        } else {
          env[key] = text;
        }
      }
    }
  }

  // Names only: the values are set by admins on the coordinator and reach the task at dispatch.
  const secrets = nameList(entry, 'secrets', source, problems, secretNameProblem);
  for (const name of secrets) {
    if (Object.hasOwn(env, name))
      problems.add(
        joinPath(`${d}.env`, name),
        `is also in secrets:; a variable comes from one or the other`,
        at('env', name),
      );
  }

  let timeoutMs: number | undefined;
  if (value.timeout !== undefined && value.timeout !== null) {
    const parsed = parseTimeout(value.timeout);
    if (typeof parsed === 'string') problems.add(`${d}.timeout`, parsed, at('timeout'));
    else timeoutMs = parsed;
  }

  let retries = 0;
  if (value.retries !== undefined && value.retries !== null) {
    const r = value.retries;
    if (typeof r !== 'number' || !Number.isInteger(r) || r < 0 || r > PLAN_LIMITS.maxRetries) {
      problems.add(
        `${d}.retries`,
        `must be a whole number from 0 to ${PLAN_LIMITS.maxRetries} (got ${describe(r)})`,
        at('retries'),
      );
    } else {
      retries = r;
    }
  }

  const cache = checkCache(value.cache, { inputs, outputs, needs, secrets }, d, at, problems);

  // Returned even with problems, so the checks across tasks (needs, cycles) still run.
  if (entry.name === undefined) return undefined;
  return {
    name: entry.name,
    extension,
    operation,
    input,
    inputs,
    outputs,
    needs,
    env,
    timeoutMs,
    retries,
    requires,
    cache,
    ...(secrets.length > 0 ? { secrets } : {}),
  };
}

/**
 * `cache: true`: the task is skipped when a result for the same declared inputs is known, so it
 * must declare what it reads (inputs: or needs:) and what it makes (outputs:, what a hit gives).
 */
function checkCache(
  raw: unknown,
  task: Pick<PlanTask, 'inputs' | 'outputs' | 'needs'> & { secrets: readonly string[] },
  d: string,
  at: (key: string) => number | undefined,
  problems: Problems,
): boolean {
  if (raw === undefined || raw === null || raw === false) return false;
  if (raw !== true) {
    problems.add(`${d}.cache`, `must be true or false (got ${describe(raw)})`, at('cache'));
    return false;
  }
  if (task.inputs.length === 0 && task.needs.length === 0) {
    problems.add(
      `${d}.cache`,
      'a cached task must declare what it reads: give it inputs: (or needs:); its result is reused only while they are unchanged',
      at('cache'),
    );
  }
  if (task.outputs.length === 0) {
    problems.add(
      `${d}.cache`,
      'a cached task must declare outputs: (the files a cache hit gives back instead of running it)',
      at('cache'),
    );
  }
  if (task.secrets.length > 0) {
    // Its outputs may depend on a value the cache key must not hold, and would be served to
    // builds that were never given the secret.
    problems.add(
      `${d}.cache`,
      'a task with secrets: is never cached (its outputs may depend on them); remove cache: true',
      at('cache'),
    );
  }
  return true;
}
