/**
 * Settings and status with inject(): who sees which setting, validation, and a backup that shows
 * its settings but refuses to change them (they are replicated from its primary).
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { backupHa, testApi, type TestApi } from '../helpers/api-context.js';

interface ErrorBody {
  error: { code: string; message: string };
}

describe('routes: settings and status', () => {
  let api: TestApi | undefined;
  afterEach(async () => {
    await api?.close();
    api = undefined;
  });

  it('shows the instance id to admins only and the instance key to nobody', async () => {
    api = await testApi();
    api.store.setSetting('Agent.InstanceId', 'team-a');
    api.store.setSetting('Agent.InstanceKey', 'secret pem');
    const admin = await api.call('GET', '/api/v1/settings', { token: api.admin });
    assert.deepEqual(admin, { status: 200, body: { 'Agent.InstanceId': 'team-a' } });
    const viewer = await api.call('GET', '/api/v1/settings', { token: api.viewer });
    assert.deepEqual(viewer, { status: 200, body: {} });
    const one = await api.call('GET', '/api/v1/settings/Agent.InstanceId', { token: api.viewer });
    assert.equal(one.status, 403);
    const key = await api.call('GET', '/api/v1/settings/Agent.InstanceKey', { token: api.admin });
    assert.equal(key.status, 404);
  });

  it('takes Builds.Retention as a duration with a unit; a bare number is refused, 0 and clearing keep forever', async () => {
    api = await testApi();
    const set = (value: unknown) =>
      api!.call('PUT', '/api/v1/settings/Builds.Retention', { token: api!.admin, body: { value } });
    assert.deepEqual(await set('30d'), {
      status: 200,
      body: { key: 'Builds.Retention', value: '30d' },
    });
    for (const bad of [30, '30', 'soon', '-1d']) {
      const refused = await set(bad);
      assert.equal(refused.status, 400, String(bad));
      assert.equal((refused.body as ErrorBody).error.code, 'VALIDATION_FAILED');
    }
    const bare = await set(30);
    assert.match((bare.body as ErrorBody).error.message, /has no unit: write 30s/);
    assert.equal(api.store.getSetting('Builds.Retention'), '30d');
    assert.deepEqual(await set(0), { status: 200, body: { key: 'Builds.Retention', value: '0' } });
    assert.deepEqual(await set(null), {
      status: 200,
      body: { key: 'Builds.Retention', value: '' },
    });
  });

  it('validates a change on the primary, and clears a clearable setting', async () => {
    api = await testApi();
    const bad = await api.call('PUT', '/api/v1/settings/Agent.InstanceId', {
      token: api.admin,
      body: { value: 'no spaces allowed' },
    });
    assert.equal(bad.status, 400);
    assert.equal((bad.body as ErrorBody).error.code, 'VALIDATION_FAILED');
    const ok = await api.call('PUT', '/api/v1/settings/Agent.InstanceId', {
      token: api.admin,
      body: { value: 'team-b' },
    });
    assert.deepEqual(ok, { status: 200, body: { key: 'Agent.InstanceId', value: 'team-b' } });
    const cleared = await api.call('PUT', '/api/v1/settings/Agent.InstanceId', {
      token: api.admin,
      body: { value: null },
    });
    assert.deepEqual(cleared, { status: 200, body: { key: 'Agent.InstanceId', value: '' } });
    const unknown = await api.call('PUT', '/api/v1/settings/Nope', {
      token: api.admin,
      body: { value: 1 },
    });
    assert.equal(unknown.status, 404);
    const viewer = await api.call('PUT', '/api/v1/settings/Agent.InstanceId', {
      token: api.viewer,
      body: { value: 'team-c' },
    });
    assert.equal(viewer.status, 403);
    assert.equal((viewer.body as ErrorBody).error.code, 'FORBIDDEN');
  });

  it('takes Cache.MaxBytes as a number or a size with a unit, and clears it to the default', async () => {
    api = await testApi();
    const put = (value: unknown) =>
      api!.call('PUT', '/api/v1/settings/Cache.MaxBytes', { token: api!.admin, body: { value } });
    assert.deepEqual(await put('50GiB'), {
      status: 200,
      body: { key: 'Cache.MaxBytes', value: 50 * 1024 ** 3 },
    });
    assert.equal(api.store.getSetting('Cache.MaxBytes'), 50 * 1024 ** 3);
    assert.deepEqual(await put(1000), {
      status: 200,
      body: { key: 'Cache.MaxBytes', value: 1000 },
    });
    for (const bad of ['lots', -1, 0.5]) {
      const refused = await put(bad);
      assert.equal(refused.status, 400, String(bad));
      assert.equal((refused.body as ErrorBody).error.code, 'VALIDATION_FAILED');
    }
    assert.equal(api.store.getSetting('Cache.MaxBytes'), 1000);
    assert.deepEqual(await put(null), { status: 200, body: { key: 'Cache.MaxBytes', value: '' } });
  });

  it('on a backup: settings are read-only (403 READ_ONLY naming the primary), still readable', async () => {
    api = await testApi(() => ({ ha: backupHa('backup-standby', 'https://primary.test:8000') }));
    api.store.setSetting('Agent.InstanceId', 'team-a');
    const refused = await api.call('PUT', '/api/v1/settings/Agent.InstanceId', {
      token: api.admin,
      body: { value: 'team-b' },
    });
    assert.equal(refused.status, 403);
    const { error } = refused.body as ErrorBody;
    assert.equal(error.code, 'READ_ONLY');
    assert.match(error.message, /changed on the primary \(https:\/\/primary\.test:8000\)/);
    assert.equal(api.store.getSetting('Agent.InstanceId'), 'team-a');
    const read = await api.call('GET', '/api/v1/settings', { token: api.admin });
    assert.deepEqual(read, { status: 200, body: { 'Agent.InstanceId': 'team-a' } });
  });

  it('reports the role, term and primary in the status and the banner', async () => {
    api = await testApi(() => ({ ha: backupHa('backup-standby', 'https://primary.test:8000') }));
    const status = await api.call('GET', '/api/v1/status', { token: api.viewer });
    assert.equal(status.status, 200);
    const view = status.body as Record<string, unknown>;
    assert.equal(view.role, 'backup-standby');
    assert.equal(view.term, 3);
    assert.equal(view.instanceId, undefined);
    assert.equal((view.primary as { url: string }).url, 'https://primary.test:8000');
    const banner = await api.call('GET', '/api/v1/banner');
    assert.deepEqual(banner, {
      status: 200,
      body: {
        role: 'backup-standby',
        primary: { url: 'https://primary.test:8000', activeSince: null },
      },
    });
    const admin = await api.call('GET', '/api/v1/status', { token: api.admin });
    assert.equal((admin.body as Record<string, unknown>).instanceId, 'test-instance');
  });
});
