/**
 * Users and authentication with inject(): login and tokens, the session cookie and its CSRF
 * token, user administration (admins only, on the primary, always one admin left).
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { PASSWORD, backupHa, testApi, type TestApi } from '../helpers/api-context.js';
import { newToken } from '../../src/coordinator/auth/passwords.js';

interface ErrorBody {
  error: { code: string; message: string };
}

const codeOf = (body: unknown): string => (body as ErrorBody).error.code;

describe('routes: authentication and users', () => {
  let api: TestApi | undefined;
  afterEach(async () => {
    await api?.close();
    api = undefined;
  });

  it('logs in with the right password (a token that works), refuses a wrong one', async () => {
    api = await testApi();
    const wrong = await api.call('POST', '/api/v1/login', {
      body: { user: 'viewer', password: 'not it' },
    });
    assert.equal(wrong.status, 401);
    assert.equal(codeOf(wrong.body), 'UNAUTHORIZED');
    const unknown = await api.call('POST', '/api/v1/login', {
      body: { user: 'nobody', password: PASSWORD },
    });
    assert.equal(unknown.status, 401);
    assert.equal((unknown.body as ErrorBody).error.message, 'wrong user name or password');

    const login = await api.call('POST', '/api/v1/login', {
      body: { user: 'viewer', password: PASSWORD },
    });
    assert.equal(login.status, 200);
    const { token, user } = login.body as { token: string; user: unknown };
    assert.deepEqual(user, { name: 'viewer', role: 'viewer' });
    const whoami = await api.call('GET', '/api/v1/whoami', { token });
    assert.deepEqual(whoami, { status: 200, body: { name: 'viewer', role: 'viewer' } });

    const out = await api.call('POST', '/api/v1/logout', { token });
    assert.equal(out.status, 204);
    const after = await api.call('GET', '/api/v1/whoami', { token });
    assert.equal(after.status, 401);
  });

  it('refuses a missing, unknown or expired token with 401', async () => {
    api = await testApi();
    assert.equal((await api.call('GET', '/api/v1/whoami')).status, 401);
    assert.equal((await api.call('GET', '/api/v1/whoami', { token: 'nonsense' })).status, 401);
    const viewer = api.store.getUser('viewer');
    assert.ok(viewer);
    const { token, hash } = newToken();
    api.store.createToken(viewer.id, hash, new Date(Date.now() - 1000).toISOString());
    const expired = await api.call('GET', '/api/v1/whoami', { token });
    assert.equal(expired.status, 401);
    assert.match((expired.body as ErrorBody).error.message, /invalid or expired/);
  });

  it('keeps the session token in an HttpOnly cookie and wants its CSRF token for changes', async () => {
    api = await testApi();
    const login = await api.app.inject({
      method: 'POST',
      url: '/api/v1/session/login',
      payload: { user: 'admin', password: PASSWORD },
    });
    assert.equal(login.statusCode, 200);
    const cookie = login.cookies.find((c) => c.name === 'muster_session');
    assert.ok(cookie);
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Strict');
    const { csrf } = login.json<{ csrf: string }>();
    const cookies = { muster_session: cookie.value };
    const create = { name: 'carol', password: PASSWORD, role: 'viewer' };
    const noCsrf = await api.app.inject({
      method: 'POST',
      url: '/api/v1/users',
      cookies,
      payload: create,
    });
    assert.equal(noCsrf.statusCode, 403);
    assert.match(noCsrf.json<ErrorBody>().error.message, /CSRF/);
    const withCsrf = await api.app.inject({
      method: 'POST',
      url: '/api/v1/users',
      cookies,
      headers: { 'x-csrf-token': csrf },
      payload: create,
    });
    assert.equal(withCsrf.statusCode, 201);
    const session = await api.app.inject({ method: 'GET', url: '/api/v1/session', cookies });
    assert.equal(session.statusCode, 200);
    assert.equal(session.json<{ csrf: string }>().csrf, csrf);
  });

  it('lets admins manage users, keeps one admin, and lets nobody delete themselves', async () => {
    api = await testApi();
    const created = await api.call('POST', '/api/v1/users', {
      token: api.admin,
      body: { name: 'carol', password: PASSWORD, role: 'admin' },
    });
    assert.equal(created.status, 201);
    assert.deepEqual(
      { ...(created.body as object), createdAt: undefined },
      { name: 'carol', role: 'admin', createdAt: undefined },
    );
    const byViewer = await api.call('POST', '/api/v1/users', {
      token: api.viewer,
      body: { name: 'dave', password: PASSWORD, role: 'viewer' },
    });
    assert.equal(byViewer.status, 403);
    assert.equal(codeOf(byViewer.body), 'FORBIDDEN');
    const listed = await api.call('GET', '/api/v1/users', { token: api.admin });
    assert.deepEqual((listed.body as { name: string }[]).map((u) => u.name).sort(), [
      'admin',
      'carol',
      'viewer',
    ]);
    assert.equal((await api.call('GET', '/api/v1/users', { token: api.viewer })).status, 403);

    const self = await api.call('DELETE', '/api/v1/users/admin', { token: api.admin });
    assert.equal(self.status, 409);
    assert.equal(codeOf(self.body), 'CONFLICT');
    assert.equal(
      (await api.call('DELETE', '/api/v1/users/carol', { token: api.admin })).status,
      204,
    );
    // admin is the only admin now: it cannot be made a viewer.
    const demote = await api.call('PATCH', '/api/v1/users/admin', {
      token: api.admin,
      body: { role: 'viewer' },
    });
    assert.equal(demote.status, 409);
    assert.equal(codeOf(demote.body), 'LAST_ADMIN');
    const missing = await api.call('PATCH', '/api/v1/users/nobody', {
      token: api.admin,
      body: { role: 'viewer' },
    });
    assert.equal(missing.status, 404);
  });

  /**
   * A test API whose password hashing waits for the test: `hashing` resolves when a request is
   * hashing, `finish()` lets it go on.
   */
  async function gatedHashing() {
    let reached = (): void => undefined;
    let finish = (): void => undefined;
    const hashing = new Promise<void>((r) => (reached = r));
    const released = new Promise<void>((r) => (finish = r));
    const gated = await testApi((defaults) => ({
      hashPassword: async (password) => {
        reached();
        await released;
        return defaults.hashPassword(password);
      },
    }));
    return { api: gated, hashing, finish };
  }

  const auditOf = (of: TestApi) => of.store.audit.list().map((r) => [r.action, r.target]);

  it('changes a role and a password together or not at all, against the user at the commit', async () => {
    const gated = await gatedHashing();
    api = gated.api;
    // The change hashes the password first; the user is deleted meanwhile: nothing of the
    // change is kept or audited, and it answers 404.
    const change = api.call('PATCH', '/api/v1/users/viewer', {
      token: api.admin,
      body: { role: 'admin', password: 'a new password for viewer' },
    });
    await gated.hashing;
    const deleted = await api.call('DELETE', '/api/v1/users/viewer', { token: api.admin });
    assert.equal(deleted.status, 204);
    gated.finish();
    const changed = await change;
    assert.equal(changed.status, 404, JSON.stringify(changed.body));
    assert.equal(codeOf(changed.body), 'NOT_FOUND');
    assert.equal(api.store.getUser('viewer'), undefined);
    assert.deepEqual(auditOf(api), [['user.delete', 'viewer']]);
  });

  it('commits a change after the hash only if its admin still is one', async () => {
    const gated = await gatedHashing();
    api = gated.api;
    const other = api.store.createUser('other', 'admin', api.store.getUser('admin')!.passwordHash);
    const { token, hash } = newToken();
    api.store.createToken(other.id, hash, new Date(Date.now() + 3_600_000).toISOString());
    // "admin" promotes viewer with a new password; "other" demotes "admin" during the hash.
    const change = api.call('PATCH', '/api/v1/users/viewer', {
      token: api.admin,
      body: { role: 'admin', password: 'a new password for viewer' },
    });
    await gated.hashing;
    const demoted = await api.call('PATCH', '/api/v1/users/admin', {
      token,
      body: { role: 'viewer' },
    });
    assert.equal(demoted.status, 200, JSON.stringify(demoted.body));
    gated.finish();
    const changed = await change;
    assert.equal(changed.status, 403, JSON.stringify(changed.body));
    assert.equal(codeOf(changed.body), 'FORBIDDEN');
    assert.equal(api.store.getUser('viewer')?.role, 'viewer');
    assert.deepEqual(auditOf(api), [['user.update', 'admin']]);
  });

  it('refuses an own password change when the account changed during the hash', async () => {
    const gated = await gatedHashing();
    api = gated.api;
    const own = api.call('PUT', '/api/v1/session/password', {
      token: api.viewer,
      body: { current: PASSWORD, password: 'the viewer wants this one' },
    });
    await gated.hashing;
    // An admin resets the account meanwhile (a new password: no gate for this one).
    const before = api.store.getUser('viewer')!.passwordHash;
    api.store.setPassword('viewer', `${before}-reset`);
    gated.finish();
    const changed = await own;
    assert.equal(changed.status, 409, JSON.stringify(changed.body));
    assert.equal(codeOf(changed.body), 'CONFLICT');
    assert.equal(api.store.getUser('viewer')?.passwordHash, `${before}-reset`);
    assert.deepEqual(auditOf(api), []);
  });

  it('on a backup: logins work, user changes are refused with READ_ONLY', async () => {
    api = await testApi(() => ({ ha: backupHa('backup-standby', 'https://primary.test') }));
    const login = await api.call('POST', '/api/v1/login', {
      body: { user: 'admin', password: PASSWORD },
    });
    assert.equal(login.status, 200);
    const created = await api.call('POST', '/api/v1/users', {
      token: api.admin,
      body: { name: 'carol', password: PASSWORD, role: 'viewer' },
    });
    assert.equal(created.status, 403);
    assert.equal(codeOf(created.body), 'READ_ONLY');
    const password = await api.call('PUT', '/api/v1/session/password', {
      token: api.viewer,
      body: { current: PASSWORD, password: 'another long one' },
    });
    assert.equal(password.status, 403);
    assert.equal(codeOf(password.body), 'READ_ONLY');
    const listed = await api.call('GET', '/api/v1/users', { token: api.admin });
    assert.equal(listed.status, 200);
  });
});
