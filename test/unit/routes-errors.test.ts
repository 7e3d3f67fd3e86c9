/**
 * The API's one error shape (http-errors.ts) with inject(): codes to statuses, Fastify's own
 * errors (bad JSON, a body over the limit) as VALIDATION_FAILED and PAYLOAD_TOO_LARGE, unknown
 * routes, and the security headers on refusals too.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import Fastify from 'fastify';
import { testApi, type TestApi } from '../helpers/api-context.js';
import { errorHandler, httpStatusOf, parse } from '../../src/coordinator/api/http-errors.js';
import { loginBody } from '../../src/api/requests.js';
import { MusterError } from '../../src/protocol/errors.js';

describe('routes: error mapping', () => {
  let api: TestApi | undefined;
  afterEach(async () => {
    await api?.close();
    api = undefined;
  });

  it('maps codes to statuses, unknown ones to 500', () => {
    assert.equal(httpStatusOf('UNAUTHORIZED'), 401);
    assert.equal(httpStatusOf('READ_ONLY'), 403);
    assert.equal(httpStatusOf('NOT_FOUND'), 404);
    assert.equal(httpStatusOf('BLOB_NOT_FOUND'), 400);
    assert.equal(httpStatusOf('LAST_ADMIN'), 409);
    assert.equal(httpStatusOf('UPLOAD_QUOTA_EXCEEDED'), 413);
    assert.equal(httpStatusOf('RATE_LIMITED'), 429);
    assert.equal(httpStatusOf('STANDBY'), 503);
    assert.equal(httpStatusOf('CERT_HOST_MISMATCH'), 422);
    assert.equal(httpStatusOf('INTERNAL'), 500);
  });

  it('names every problem of a body that fails its schema', () => {
    assert.throws(
      () => parse(loginBody, { user: 5 }, 'login'),
      (err: unknown) =>
        err instanceof MusterError &&
        err.code === 'VALIDATION_FAILED' &&
        /^invalid login: /.test(err.message) &&
        Array.isArray(err.details?.problems) &&
        err.details.problems.length === 2,
    );
  });

  it('answers thrown errors in one shape: MusterError by code, the rest as INTERNAL', async () => {
    const app = Fastify();
    app.setErrorHandler(errorHandler);
    app.get('/conflict', async () => {
      throw new MusterError('CONFLICT', 'taken', { name: 'x' });
    });
    app.get('/bug', async () => {
      throw new TypeError('undefined is not a function');
    });
    const conflict = await app.inject({ method: 'GET', url: '/conflict' });
    assert.equal(conflict.statusCode, 409);
    assert.deepEqual(conflict.json(), {
      error: { code: 'CONFLICT', message: 'taken', details: { name: 'x' } },
    });
    const bug = await app.inject({ method: 'GET', url: '/bug' });
    assert.equal(bug.statusCode, 500);
    assert.deepEqual(bug.json(), {
      error: { code: 'INTERNAL', message: 'internal error; see the coordinator log' },
    });
    await app.close();
  });

  it('turns malformed JSON into 400 VALIDATION_FAILED and a body over the limit into 413', async () => {
    api = await testApi();
    const malformed = await api.app.inject({
      method: 'POST',
      url: '/api/v1/login',
      headers: { 'content-type': 'application/json' },
      payload: '{"user": ',
    });
    assert.equal(malformed.statusCode, 400);
    assert.equal(malformed.json<{ error: { code: string } }>().error.code, 'VALIDATION_FAILED');
    const large = await api.app.inject({
      method: 'POST',
      url: '/api/v1/login',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ user: 'admin', password: 'x'.repeat(64 * 1024) }),
    });
    assert.equal(large.statusCode, 413);
    assert.equal(large.json<{ error: { code: string } }>().error.code, 'PAYLOAD_TOO_LARGE');
  });

  it('asks for credentials before saying an API route does not exist, and sends security headers', async () => {
    api = await testApi();
    const anonymous = await api.call('GET', '/api/v1/nothing-here');
    assert.equal(anonymous.status, 401);
    const known = await api.app.inject({
      method: 'GET',
      url: '/api/v1/nothing-here',
      headers: { authorization: `Bearer ${api.viewer}` },
    });
    assert.equal(known.statusCode, 404);
    assert.deepEqual(known.json(), {
      error: { code: 'NOT_FOUND', message: 'no route GET /api/v1/nothing-here' },
    });
    assert.equal(known.headers['x-frame-options'], 'DENY');
    assert.equal(known.headers['x-content-type-options'], 'nosniff');
    assert.match(String(known.headers['content-security-policy']), /default-src 'self'/);
  });
});
