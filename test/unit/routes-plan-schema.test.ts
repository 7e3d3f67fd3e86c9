/** GET /api/v1/plan.schema.json with inject(): public, the schema planJsonSchema() builds. */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { testApi, type TestApi } from '../helpers/api-context.js';
import { planJsonSchema } from '../../src/api/plan/schema.js';

describe('routes: the plan schema', () => {
  let api: TestApi | undefined;
  afterEach(async () => {
    await api?.close();
    api = undefined;
  });

  it('serves the plan JSON Schema without a login, as schema+json', async () => {
    api = await testApi();
    const response = await api.app.inject({ method: 'GET', url: '/api/v1/plan.schema.json' });
    assert.equal(response.statusCode, 200);
    assert.match(String(response.headers['content-type']), /^application\/schema\+json/);
    assert.deepEqual(JSON.parse(response.body), planJsonSchema());
    // With a token it is the same document.
    const viewer = await api.call('GET', '/api/v1/plan.schema.json', { token: api.viewer });
    assert.deepEqual(viewer, { status: 200, body: planJsonSchema() });
  });
});
