/**
 * The API reference at /api/docs: the OpenAPI document rendered as one plain HTML page, made on
 * the server with no script, no inline style and nothing from elsewhere (the coordinator's
 * Content-Security-Policy allows neither). Operations by tag; each with its access, parameters,
 * request body schema and example, and responses with their error codes.
 */

type Json = Record<string, unknown>;

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

export function apiReferencePage(doc: Json): string {
  const info = (doc.info ?? {}) as Json;
  const paths = (doc.paths ?? {}) as Record<string, Json>;
  const components = (doc.components ?? {}) as Json;
  const tags = (doc.tags ?? []) as { name: string; description?: string }[];
  const byTag = new Map<string, string[]>();
  for (const [path, item] of Object.entries(paths)) {
    for (const method of METHODS) {
      const op = item[method] as Json | undefined;
      if (!op) continue;
      const tag = ((op.tags ?? []) as string[])[0] ?? 'Other';
      const list = byTag.get(tag) ?? [];
      list.push(operationHtml(method, path, op, components));
      byTag.set(tag, list);
    }
  }
  const sections = tags
    .filter((tag) => byTag.has(tag.name))
    .map(
      (tag) =>
        `<section id="${anchor(tag.name)}"><h2>${esc(tag.name)}</h2>` +
        `${tag.description ? `<p>${inline(tag.description)}</p>` : ''}` +
        `${(byTag.get(tag.name) ?? []).join('\n')}</section>`,
    );
  const toc = tags
    .filter((tag) => byTag.has(tag.name))
    .map((tag) => `<li><a href="#${anchor(tag.name)}">${esc(tag.name)}</a></li>`)
    .join('');
  const title = `${text(info.title, 'API')} ${text(info.version, '')}`.trim();
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title></head>
<body>
<header><h1>${esc(title)}</h1>
<p>The machine-readable document: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a> (OpenAPI ${esc(text(doc.openapi, ''))}).</p>
${markdown(text(info.description, ''))}
<nav><ul>${toc}</ul></nav></header>
<main>
${sections.join('\n')}
</main>
</body>
</html>
`;
}

function operationHtml(method: string, path: string, op: Json, components: Json): string {
  const id = text(op.operationId, `${method}-${path}`);
  const parts = [
    `<article id="${anchor(id)}"><h3><code>${method.toUpperCase()} ${esc(path)}</code></h3>`,
    `<p><strong>${inline(text(op.summary, ''))}</strong></p>`,
    `<p>${inline(text(op.description, ''))} Operation id: <code>${esc(id)}</code>.</p>`,
  ];
  const parameters = (op.parameters ?? []) as Json[];
  if (parameters.length > 0) {
    const rows = parameters.map(
      (p) =>
        `<tr><td><code>${esc(text(p.name))}</code></td><td>${esc(text(p.in))}</td>` +
        `<td>${p.required ? 'required' : 'optional'}</td>` +
        `<td><code>${esc(JSON.stringify(p.schema))}</code></td></tr>`,
    );
    parts.push(
      `<table><caption>Parameters</caption><tr><th>name</th><th>in</th><th></th><th>schema</th></tr>${rows.join('')}</table>`,
    );
  }
  const body = op.requestBody as Json | undefined;
  if (body) {
    for (const [type, media] of Object.entries((body.content ?? {}) as Record<string, Json>)) {
      const schema = resolve(media.schema as Json | undefined, components);
      parts.push(
        `<details><summary>Request body (<code>${esc(type)}</code>)</summary><pre>${esc(JSON.stringify(schema, null, 2))}</pre></details>`,
      );
      if (media.example !== undefined)
        parts.push(`<p>Example:</p><pre>${esc(JSON.stringify(media.example, null, 2))}</pre>`);
    }
  }
  const responses = Object.entries((op.responses ?? {}) as Record<string, Json>).map(
    ([status, response]) => {
      const resolved = resolve(response, components) ?? {};
      return `<dt>${esc(status)}</dt><dd>${markdown(text(resolved.description, ''))}</dd>`;
    },
  );
  parts.push(`<h4>Responses</h4><dl>${responses.join('')}</dl></article>`);
  return parts.join('\n');
}

/** Follows a local `$ref` (#/components/KIND/NAME) once. */
function resolve(value: Json | undefined, components: Json): Json | undefined {
  const ref = value?.$ref;
  if (typeof ref !== 'string') return value;
  const [, , kind, name] = ref.split('/');
  return ((components[kind ?? ''] ?? {}) as Record<string, Json>)[name ?? ''];
}

/** The little markdown the document's descriptions use: paragraphs, `- ` lists, code, bold. */
function markdown(text: string): string {
  return text
    .split(/\n\n+/)
    .map((block) => {
      const lines = block.split('\n');
      if (lines.every((line) => line.startsWith('- ')))
        return `<ul>${lines.map((line) => `<li>${inline(line.slice(2))}</li>`).join('')}</ul>`;
      return `<p>${inline(block)}</p>`;
    })
    .join('\n');
}

function inline(text: string): string {
  return esc(text)
    .replace(/`([^`]+)`/g, '<code>$1</code>')
    .replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>');
}

function anchor(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '-');
}

function esc(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

/** A string field of the document, or the fallback. */
function text(value: unknown, fallback = ''): string {
  return typeof value === 'string' ? value : fallback;
}
