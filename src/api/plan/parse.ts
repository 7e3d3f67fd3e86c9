/**
 * Parses and validates a build plan (the YAML format is described in docs/plans.md).
 *
 * Validation never stops at the first mistake: every problem in the plan is collected and
 * reported at once in a PLAN_INVALID error (`details.problems`), each as one line that names the
 * task and the field, e.g. `tasks.link.needs: unknown task "compil"; did you mean "compile"?
 * (line 12)`. Only YAML syntax errors and the size limits stop validation early, because nothing
 * after them can be trusted.
 *
 * The checks live beside it: the YAML locator (yaml-source.ts), the problem list (problems.ts),
 * suggestions (suggest.ts), the keys and their descriptions (field-table.ts), single fields (fields.ts), one task (check-task.ts) and the task graph
 * (graph.ts).
 */
import { LineCounter, parseDocument } from 'yaml';
import { checkTask } from './check-task.js';
import { PLAN_KEYS } from './field-table.js';
import { isObject, type TaskEntry } from './fields.js';
import { findCycles, topologicalOrder } from './graph.js';
import { PLAN_LIMITS } from './limits.js';
import { badNameText, compareNames, TASK_NAME_PATTERN } from './names.js';
import { describe, joinPath, Problems } from './problems.js';
import { closest, suggestKey, unknownKeyText } from './suggest.js';
import type { Plan, PlanTask } from './types.js';
import { Source, type AstPath } from './yaml-source.js';

interface Checked {
  task: PlanTask;
  display: string;
  ast: AstPath;
}

/** Parses a plan (YAML text) into a validated Plan, or throws PLAN_INVALID listing every problem. */
export function parsePlan(text: string, options: { sourceName?: string } = {}): Plan {
  const problems = new Problems();
  const fail: () => never = () => {
    throw problems.error(options.sourceName);
  };

  if (typeof text !== 'string') {
    problems.add('', 'the plan is not text');
    fail();
  }
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > PLAN_LIMITS.maxBytes) {
    problems.add('', `the plan is ${bytes} bytes; the limit is ${PLAN_LIMITS.maxBytes} (1 MiB)`);
    fail();
  }

  const lineCounter = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter,
    prettyErrors: false,
    uniqueKeys: false, // reported below with both lines, without stopping validation
    merge: true,
  });
  const source = new Source(doc, lineCounter);
  if (doc.errors.length > 0) {
    for (const err of doc.errors) {
      problems.add('', `YAML syntax: ${err.message}`, source.lineOfOffset(err.pos[0]));
    }
    fail();
  }
  // Before toJS() and every walk below: the work they do grows with the number of nodes.
  if (source.countNodes(PLAN_LIMITS.maxNodes) > PLAN_LIMITS.maxNodes) {
    problems.add(
      '',
      `the plan has more than ${PLAN_LIMITS.maxNodes} YAML nodes (mappings, lists, keys and values); the limit is ${PLAN_LIMITS.maxNodes}`,
    );
    fail();
  }
  let root: unknown;
  try {
    root = doc.toJS({ maxAliasCount: 1000 });
  } catch (err) {
    problems.add('', `YAML: ${err instanceof Error ? err.message : String(err)}`);
    fail();
  }

  for (const dup of source.duplicateKeys()) {
    const [first, ...later] = dup.lines;
    for (const line of later) {
      const what = dup.path === 'tasks' ? 'task name' : 'key';
      problems.add(dup.path, `duplicate ${what} "${dup.key}" (first at line ${first})`, line);
    }
  }

  if (root === null || root === undefined) {
    problems.add('', 'the plan is empty; it needs a "tasks:" mapping');
    fail();
  }
  if (!isObject(root)) {
    problems.add('', `the plan must be a mapping with a "tasks:" key (got ${describe(root)})`);
    fail();
  }
  const top = root;

  let tasksMisspelt = false;
  for (const key of Object.keys(top)) {
    if (!PLAN_KEYS.includes(key)) {
      const suggestion = suggestKey(key, PLAN_KEYS);
      tasksMisspelt ||= suggestion === 'tasks';
      problems.add(joinPath('', key), unknownKeyText(suggestion, PLAN_KEYS), source.line([key]));
    }
  }

  let planName: string | undefined;
  if (top.name !== undefined && top.name !== null) {
    const name = source.scalarText(['name'], top.name);
    if (name === undefined || name.trim() === '') {
      problems.add(
        'name',
        `must be a non-empty string (got ${describe(top.name)})`,
        source.line(['name']),
      );
    } else if (name.length > 200) {
      problems.add('name', 'is longer than 200 characters', source.line(['name']));
    } else {
      planName = name;
    }
  }

  // Collect the task entries from either form.
  const entries: TaskEntry[] = [];
  const tasksValue = top.tasks;
  const count = Array.isArray(tasksValue)
    ? tasksValue.length
    : isObject(tasksValue)
      ? Object.keys(tasksValue).length
      : 0;
  if (count > PLAN_LIMITS.maxTasks) {
    problems.add('tasks', `the plan has ${count} tasks; the limit is ${PLAN_LIMITS.maxTasks}`);
    fail();
  }
  if (tasksValue === undefined || tasksValue === null) {
    // A misspelt "tasks:" key is reported above; "missing" would only repeat it.
    if (!tasksMisspelt) {
      problems.add('tasks', 'missing: a plan needs at least one task', source.line(['tasks']));
    }
  } else if (Array.isArray(tasksValue)) {
    if (tasksValue.length === 0) {
      problems.add('tasks', 'is empty: a plan needs at least one task', source.line(['tasks']));
    }
    const firstLine = new Map<string, number | undefined>();
    tasksValue.forEach((item, i) => {
      const ast = ['tasks', i];
      const display = `tasks[${i}]`;
      if (!isObject(item)) {
        problems.add(
          display,
          `must be a mapping with name: and run: or uses: (got ${describe(item)})`,
          source.line(ast),
        );
        return;
      }
      const rawName = item.name;
      const name = source.scalarText([...ast, 'name'], rawName);
      if (rawName === undefined || rawName === null) {
        problems.add(display, 'has no name (the list form needs name:)', source.line(ast));
        entries.push({ name: undefined, display, ast, value: item, listForm: true });
        return;
      }
      if (name === undefined || !TASK_NAME_PATTERN.test(name)) {
        problems.add(
          `${display}.name`,
          badNameText(name ?? rawName),
          source.line([...ast, 'name']),
        );
        entries.push({ name: undefined, display, ast, value: item, listForm: true });
        return;
      }
      if (firstLine.has(name)) {
        const first = firstLine.get(name);
        problems.add(
          `${display}.name`,
          `duplicate task name "${name}"${first === undefined ? '' : ` (first at line ${first})`}`,
          source.line([...ast, 'name']),
        );
        entries.push({ name: undefined, display, ast, value: item, listForm: true });
        return;
      }
      firstLine.set(name, source.line([...ast, 'name']));
      entries.push({ name, display: `tasks.${name}`, ast, value: item, listForm: true });
    });
  } else if (isObject(tasksValue)) {
    if (Object.keys(tasksValue).length === 0) {
      problems.add('tasks', 'is empty: a plan needs at least one task', source.line(['tasks']));
    }
    for (const [name, value] of Object.entries(tasksValue)) {
      const ast = ['tasks', name];
      const display = joinPath('tasks', name);
      if (!TASK_NAME_PATTERN.test(name)) {
        problems.add(display, badNameText(name), source.line(ast));
        entries.push({ name: undefined, display, ast, value, listForm: false });
      } else {
        entries.push({ name, display, ast, value, listForm: false });
      }
    }
  } else {
    problems.add(
      'tasks',
      `must be a mapping of task names to tasks, or a list of tasks with name: (got ${describe(tasksValue)})`,
      source.line(['tasks']),
    );
  }

  // Every name written, valid or not, so a need of a misnamed task is not reported twice.
  const allNames = new Set<string>();
  for (const entry of entries) {
    if (entry.name !== undefined) allNames.add(entry.name);
    else if (!entry.listForm) allNames.add(String(entry.ast[1]));
    else if (isObject(entry.value) && typeof entry.value.name === 'string')
      allNames.add(entry.value.name);
  }

  const checked = new Map<string, Checked>();
  for (const entry of entries) {
    const task = checkTask(entry, source, problems);
    if (task !== undefined && entry.name !== undefined) {
      checked.set(entry.name, { task, display: entry.display, ast: entry.ast });
    }
  }

  // needs: unknown names and self-needs.
  const validNames = [...allNames].filter((n) => TASK_NAME_PATTERN.test(n)).sort(compareNames);
  // Looking for a suggestion is O(tasks); a plan with thousands of unknown needs gets no more.
  let suggestionsLeft = 20;
  for (const { task, display, ast } of checked.values()) {
    for (const need of task.needs) {
      const line = (): number | undefined => source.line([...ast, 'needs']);
      if (need === task.name) {
        problems.add(`${display}.needs`, 'a task cannot need itself', line());
      } else if (!allNames.has(need)) {
        const suggestion = suggestionsLeft-- > 0 ? closest(need, validNames, task.name) : undefined;
        problems.add(
          `${display}.needs`,
          `unknown task "${need}"${suggestion === undefined ? '' : `; did you mean "${suggestion}"?`}`,
          line(),
        );
      }
    }
  }

  for (const cycle of findCycles(checked)) {
    const first = checked.get(cycle[0] as string) as Checked;
    problems.add(
      `${first.display}.needs`,
      `dependency cycle ${cycle.join(' -> ')}`,
      source.line([...first.ast, 'needs']),
    );
  }

  if (problems.count > 0) fail();
  return { name: planName, tasks: topologicalOrder(checked) };
}

/** Every input glob of the plan (what the client resolves and uploads), deduplicated and sorted. */
export function planInputPatterns(plan: Plan): string[] {
  return [...new Set(plan.tasks.flatMap((t) => t.inputs))].sort(compareNames);
}
