/**
 * The OpenAPI document (src/coordinator/api/openapi.ts) against the routes Fastify registered:
 * every route under /api/ is an operation of the document and every operation a route; every
 * JSON answer has a schema, generated from the view types into the committed
 * openapi-view-schemas.ts (npm run api-views), which is what the generator makes now; the
 * document and its page are served without credentials; the request examples are valid requests.
 * (openapi-responses.test.ts checks real answers against those schemas.)
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { testApi, type TestApi } from '../helpers/api-context.js';
import { openApiDocument } from '../../src/coordinator/api/openapi.js';
import { operations } from '../../src/coordinator/api/openapi-operations.js';
import { requestExamples, requestSchemas } from '../../src/coordinator/api/openapi-schemas.js';

type ErrorBody = { error: { code: string } };
type Doc = { paths: Record<string, Record<string, { operationId?: string; responses: object }>> };

interface Response {
  content?: Record<string, { schema?: Record<string, unknown> }>;
}

const repo = fileURLToPath(new URL('../../../', import.meta.url));

describe('OpenAPI document', () => {
  let api: TestApi;
  before(async () => {
    api = await testApi();
    await api.app.ready();
  });
  after(async () => {
    await api.close();
  });

  it('has an operation for every route registered under /api/, and a route for each', () => {
    const doc = openApiDocument('test') as Doc;
    const registered = new Set<string>();
    for (const route of api.app.registeredRoutes) {
      if (route.method === 'HEAD' || !route.url.startsWith('/api/')) continue;
      const path = route.url.replace(/:(\w+)/g, '{$1}');
      const key = `${route.method.toLowerCase()} ${path}`;
      registered.add(key);
      assert.ok(doc.paths[path]?.[route.method.toLowerCase()], `${key} is not in the document`);
    }
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const method of Object.keys(item))
        assert.ok(registered.has(`${method} ${path}`), `${method} ${path} is not a route`);
    }
  });

  it('names each operation once and documents an error status on each', () => {
    const ids = operations.map((op) => op.operationId);
    assert.equal(new Set(ids).size, ids.length);
    const doc = openApiDocument('test') as Doc;
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        const statuses = Object.keys(op.responses);
        assert.ok(
          statuses.some((s) => s.startsWith('4')),
          `${method} ${path}: ${statuses.join(' ')}`,
        );
      }
    }
  });

  it('gives every JSON success a schema: a view in its components, an array of one, or an object', () => {
    const doc = openApiDocument('test') as Doc & {
      components: { schemas: Record<string, unknown> };
    };
    const target = (ref: unknown): string => {
      assert.equal(typeof ref, 'string');
      const name = String(ref).replace('#/components/schemas/', '');
      assert.ok(doc.components.schemas[name], `${String(ref)} is not in the components`);
      return name;
    };
    let answers = 0;
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        for (const [status, response] of Object.entries(op.responses as Record<string, Response>)) {
          const schema = response.content?.['application/json']?.schema;
          if (!status.startsWith('2') || schema === undefined) continue;
          answers++;
          const where = `${method} ${path} ${status}`;
          if (schema.$ref !== undefined) target(schema.$ref);
          else if (schema.type === 'array')
            target((schema.items as Record<string, unknown> | undefined)?.$ref);
          else
            assert.deepEqual(
              [op.operationId, schema],
              ['getOpenApiDocument', { type: 'object' }],
              where,
            );
        }
      }
    }
    assert.ok(answers >= 60, `${answers} JSON answers`);
  });

  it('has the view schemas npm run api-views generates from src/api/views now', async () => {
    const script = pathToFileURL(`${repo}scripts/api-view-schemas.js`).href;
    const { viewSchemasModule, viewSchemasFile } = (await import(script)) as {
      viewSchemasModule: () => Promise<string>;
      viewSchemasFile: string;
    };
    assert.equal(
      readFileSync(viewSchemasFile, 'utf8'),
      await viewSchemasModule(),
      'openapi-view-schemas.ts is out of date: npm run api-views',
    );
  });

  it('says which operations a viewer may call: exactly the others refuse a viewer (FORBIDDEN)', async () => {
    const sample = (name: string): string =>
      ['sha256', 'key', 'direct'].includes(name) ? '0'.repeat(64) : name === 'id' ? '1' : 'x';
    const refused: string[] = [];
    for (const op of operations) {
      // Logging out would end the viewer's token for the rest; the event stream never ends.
      if (op.access === 'public' || op.access === 'peer') continue;
      if (op.operationId.startsWith('logOut') || op.reply === 'events') continue;
      const url = op.path.replace(/\{(\w+)\}/g, (_m, name: string) => sample(name));
      const bodyless = op.method === 'get' || op.method === 'delete';
      const response = await api.app.inject({
        method: op.method.toUpperCase() as 'GET',
        url,
        headers: {
          authorization: `Bearer ${api.viewer}`,
          ...(bodyless
            ? {}
            : { 'content-type': op.rawBody ? 'application/octet-stream' : 'application/json' }),
        },
        ...(bodyless ? {} : { payload: op.rawBody ? '' : '{}' }),
      });
      // Refused for the role: exactly the operations the document marks for builders or admins.
      const forRole = op.access === 'builder' || op.access === 'admin';
      // FORBIDDEN: the role; READ_ONLY (also 403) is where it runs (a backup), not who calls.
      const code = response.statusCode === 403 ? response.json<ErrorBody>().error.code : '';
      if ((code === 'FORBIDDEN') !== forRole)
        refused.push(`${op.operationId} (${op.access}): ${response.statusCode} ${code}`);
    }
    assert.deepEqual(
      refused,
      [],
      'operations marked for builders or admins that a viewer got past',
    );
  });

  it('shows examples that its own schemas accept', () => {
    const names = Object.keys(requestExamples) as (keyof typeof requestSchemas)[];
    assert.ok(names.includes('CreateBuildRequest') && names.includes('LoginRequest'));
    for (const name of names) {
      const result = requestSchemas[name].safeParse(requestExamples[name]);
      assert.ok(result.success, `${name}: ${JSON.stringify(result.error?.issues)}`);
    }
  });

  it('serves the document and its page without credentials, the page with nothing from elsewhere', async () => {
    const served = await api.call('GET', '/api/v1/openapi.json');
    assert.equal(served.status, 200);
    assert.deepEqual(served.body, openApiDocument(api.ctx.version));
    const page = await api.app.inject({ method: 'GET', url: '/api/docs' });
    assert.equal(page.statusCode, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    for (const op of operations)
      assert.ok(page.body.includes(`id="${op.operationId.toLowerCase()}"`), op.operationId);
    assert.doesNotMatch(page.body, /<script|<link|<img|style=|src=/i);
    for (const [, target] of page.body.matchAll(/href="([^"]*)"/g))
      assert.match(String(target), /^[#/]/, `a link away from the coordinator: ${target}`);
  });
});
