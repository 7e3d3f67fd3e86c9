/**
 * The OpenAPI document's response schemas against real answers: a scenario calls the routes
 * through inject() (test/helpers/api-context.ts) and validates every JSON answer against the
 * schema the document gives its operation and status, with a draft 2020-12 validator. The view
 * schemas forbid properties they do not name (additionalProperties: false), so a field a route
 * answers that its view type does not declare, a leak, fails here.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import type { BuildView } from '../../src/api/views/builds.js';
import type { CompileSessionView } from '../../src/api/views/compile.js';
import type { HeartbeatView } from '../../src/api/views/ha.js';
import type { HaStatus } from '../../src/coordinator/api/ports.js';
import type { Store } from '../../src/coordinator/store/store.js';
import { openApiDocument } from '../../src/coordinator/api/openapi.js';
import { operations, type ApiOperation } from '../../src/coordinator/api/openapi-operations.js';
import { viewSchemas } from '../../src/coordinator/api/openapi-view-schemas.js';
import { toolchainIdOf } from '../../src/common/toolchain-id.js';
import { parsePlan } from '../../src/api/plan/parse.js';
import { PASSWORD, blobsOfSize, testApi, type TestApi } from '../helpers/api-context.js';
import { AnsweringPeer, primarySideFor } from '../helpers/primary-side.js';

type Json = Record<string, unknown>;

const sha = (text: string): string => createHash('sha256').update(text).digest('hex');

/** The document's schema of an operation's JSON answer with a status, its views as $defs. */
class ResponseChecker {
  private readonly doc = openApiDocument('test') as {
    paths: Record<string, Record<string, { responses: Record<string, Json> }>>;
  };
  private readonly ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true });
  private readonly compiled = new Map<string, ValidateFunction>();
  private readonly defs = JSON.parse(
    JSON.stringify(viewSchemas).replaceAll('#/components/schemas/', '#/$defs/'),
  ) as Json;
  /** Operations answered and checked, by id. */
  readonly reached = new Set<string>();

  validator(op: ApiOperation, status: number): ValidateFunction {
    const key = `${op.operationId} ${status}`;
    let validate = this.compiled.get(key);
    if (validate === undefined) {
      const response = this.doc.paths[op.path]?.[op.method]?.responses[String(status)] as
        { content?: Record<string, { schema: Json }> } | undefined;
      const schema = response?.content?.['application/json']?.schema;
      assert.ok(schema, `${key}: no JSON answer in the document`);
      const local = JSON.parse(
        JSON.stringify(schema).replaceAll('#/components/schemas/', '#/$defs/'),
      ) as Json;
      validate = this.ajv.compile({ ...local, $defs: this.defs });
      this.compiled.set(key, validate);
    }
    return validate;
  }

  /** Checks an answer against its operation's schema; the operation counts as reached. */
  check(operationId: string, answer: { status: number; body: unknown }): void {
    const op = operations.find((o) => o.operationId === operationId);
    assert.ok(op, operationId);
    assert.ok(
      answer.status === (op.status ?? 200) || answer.status === op.alsoStatus,
      `${operationId}: ${answer.status} ${JSON.stringify(answer.body)}`,
    );
    const validate = this.validator(op, answer.status);
    assert.ok(
      validate(answer.body),
      `${operationId} ${answer.status}: ${this.ajv.errorsText(validate.errors)}\n${JSON.stringify(answer.body)}`,
    );
    this.reached.add(operationId);
  }
}

describe('OpenAPI response schemas against real answers', () => {
  const checker = new ResponseChecker();
  let api: TestApi;
  const sizes = new Map<string, number>();
  before(async () => {
    // Blobs of known sizes (the cache and toolchain routes check them).
    api = await testApi(() => ({ blobs: blobsOfSize((h) => sizes.get(h)) }));
  });
  after(async () => {
    await api.close();
  });

  it('refuses an answer with a field its view does not declare', () => {
    const op = operations.find((o) => o.operationId === 'getCurrentUser');
    assert.ok(op);
    const validate = checker.validator(op, 200);
    assert.ok(validate({ name: 'admin', role: 'admin' }));
    assert.ok(!validate({ name: 'admin', role: 'admin', passwordHash: 'x' }));
    assert.ok(!validate({ name: 'admin' }));
  });

  it('matches the schemas on the routes a scenario calls', async () => {
    const { admin, viewer } = api;
    const check = checker.check.bind(checker);

    // Session and system.
    check(
      'logIn',
      await api.call('POST', '/api/v1/login', { body: { user: 'admin', password: PASSWORD } }),
    );
    const session = await api.app.inject({
      method: 'POST',
      url: '/api/v1/session/login',
      payload: { user: 'viewer', password: PASSWORD },
    });
    check('logInSession', { status: session.statusCode, body: session.json() });
    const cookie = String(session.headers['set-cookie']).split(';')[0] ?? '';
    const current = await api.app.inject({
      method: 'GET',
      url: '/api/v1/session',
      headers: { cookie },
    });
    check('getSession', { status: current.statusCode, body: current.json() });
    check('getCurrentUser', await api.call('GET', '/api/v1/whoami', { token: viewer }));
    check('getStatus', await api.call('GET', '/api/v1/status', { token: admin }));
    check('getStatus', await api.call('GET', '/api/v1/status', { token: viewer }));
    check('getBanner', await api.call('GET', '/api/v1/banner'));
    check('getOpenApiDocument', await api.call('GET', '/api/v1/openapi.json'));

    // Agents and join tokens.
    check(
      'addAgent',
      await api.call('POST', '/api/v1/agents', {
        token: admin,
        body: {
          name: 'build-1',
          address: '10.0.0.5:7420',
          accessKey: 'k'.repeat(32),
          fingerprint: 'ab'.repeat(32),
          labels: ['linux'],
        },
      }),
    );
    check('listAgents', await api.call('GET', '/api/v1/agents', { token: viewer }));
    check('getAgent', await api.call('GET', '/api/v1/agents/build-1', { token: viewer }));
    check(
      'updateAgent',
      await api.call('PATCH', '/api/v1/agents/build-1', { token: admin, body: { slots: 4 } }),
    );
    check(
      'approveAgent',
      await api.call('POST', '/api/v1/agents/build-1/approve', { token: admin }),
    );
    check(
      'createJoinToken',
      await api.call('POST', '/api/v1/join-tokens', { token: admin, body: { labels: ['linux'] } }),
    );
    check('listJoinTokens', await api.call('GET', '/api/v1/join-tokens', { token: admin }));

    // Extensions.
    const file = { path: 'muster-extension.json', sha256: sha('{}'), size: 2, mode: 0o644 };
    sizes.set(file.sha256, file.size);
    check(
      'addExtension',
      await api.call('POST', '/api/v1/extensions', {
        token: admin,
        body: { name: 'greet', version: '1.0.0', files: [file] },
      }),
    );
    check('listExtensions', await api.call('GET', '/api/v1/extensions', { token: viewer }));

    // Blobs and builds.
    const input = { path: 'a.c', sha256: sha('int main;'), size: 9, mode: 0o644 };
    check(
      'findMissingBlobs',
      await api.call('POST', '/api/v1/blobs/missing', {
        token: viewer,
        body: { hashes: [input.sha256] },
      }),
    );
    sizes.set(input.sha256, input.size);
    api.present.add(input.sha256); // (the build service's blobs)
    const plan = 'name: hello\ntasks:\n  compile:\n    run: cc -c a.c\n    inputs: [a.c]\n';
    const created = await api.call('POST', '/api/v1/builds', {
      token: admin,
      body: { plan, files: [input] },
    });
    check('createBuild', created);
    const id = (created.body as BuildView).id;
    check('listBuilds', await api.call('GET', '/api/v1/builds', { token: viewer }));
    check('getBuild', await api.call('GET', `/api/v1/builds/${id}`, { token: viewer }));
    check('getBuildLogs', await api.call('GET', `/api/v1/builds/${id}/logs`, { token: viewer }));
    check(
      'listBuildAttempts',
      await api.call('GET', `/api/v1/builds/${id}/attempts`, { token: viewer }),
    );
    check('cancelBuild', await api.call('POST', `/api/v1/builds/${id}/cancel`, { token: admin }));

    // Compile sessions, the cache, toolchains.
    const opened = await api.call('POST', '/api/v1/compile-sessions', {
      token: admin,
      body: { command: 'make -j4', cwd: '/home/ada/lua', host: 'laptop' },
    });
    check('openCompileSession', opened);
    const summary = { jobs: 0, remote: 0, local: 0, cacheHits: 0, fallbacks: 0 };
    check(
      'closeCompileSession',
      await api.call(
        'POST',
        `/api/v1/compile-sessions/${(opened.body as CompileSessionView).session}/close`,
        { token: admin, body: { exitCode: 0, summary } },
      ),
    );
    const info = {
      driver: 'bin/gcc',
      triple: 'x86_64-linux-gnu',
      version: '12.2.0',
      glibc: '2.34',
    };
    const gcc = { path: 'bin/gcc', sha256: sha('gcc'), size: 900, mode: 0o755 };
    sizes.set(gcc.sha256, gcc.size);
    const toolchain = toolchainIdOf({ ...info, files: [gcc] });
    check(
      'registerToolchain',
      await api.call('PUT', `/api/v1/toolchains/${toolchain}`, {
        token: admin,
        body: { files: [gcc], info },
      }),
    );
    check(
      'getToolchain',
      await api.call('GET', `/api/v1/toolchains/${toolchain}`, { token: viewer }),
    );
    check('listToolchains', await api.call('GET', '/api/v1/toolchains', { token: admin }));
    const object = { name: 'object', sha256: sha('a.o'), size: 1200, mode: 0o644 };
    const stderr = { sha256: sha('warning'), size: 30 };
    sizes.set(object.sha256, object.size).set(stderr.sha256, stderr.size);
    const key = sha('key');
    const direct = sha('direct');
    const entry = { outputs: [object], stderr, exitCode: 0, toolchain };
    for (let i = 0; i < 2; i++) {
      check(
        'putCacheEntry',
        await api.call('PUT', `/api/v1/cache/entries/${key}`, { token: admin, body: entry }),
      );
      check(
        'addManifestLine',
        await api.call('POST', `/api/v1/cache/manifests/${direct}`, {
          token: admin,
          body: { includes: [['/usr/include/stdio.h', sha('stdio')]], entry: key },
        }),
      );
    }
    check(
      'putCacheResults',
      await api.call('POST', '/api/v1/cache/results', {
        token: admin,
        body: {
          results: [
            { key: sha('kept'), entry },
            // Its object was never uploaded: answered not stored, with the error.
            {
              key: sha('refused'),
              entry: { ...entry, outputs: [{ ...object, sha256: sha('?') }] },
            },
          ],
        },
      }),
    );
    check(
      'lookUpCache',
      await api.call('POST', '/api/v1/cache/lookup', {
        token: viewer,
        body: { direct, keys: [key] },
      }),
    );
    check(
      'listCacheDirectKeys',
      await api.call('GET', '/api/v1/cache/directs?since=0', { token: viewer }),
    );

    // Settings, certificate, users, audit, secrets.
    check('listSettings', await api.call('GET', '/api/v1/settings', { token: admin }));
    check(
      'listSettingDefinitions',
      await api.call('GET', '/api/v1/setting-definitions', { token: viewer }),
    );
    check(
      'setSetting',
      await api.call('PUT', '/api/v1/settings/Builds.Retention', {
        token: admin,
        body: { value: '30d' },
      }),
    );
    check(
      'getSetting',
      await api.call('GET', '/api/v1/settings/Builds.Retention', { token: viewer }),
    );
    check('getCertificate', await api.call('GET', '/api/v1/certificate', { token: viewer }));
    check(
      'createUser',
      await api.call('POST', '/api/v1/users', {
        token: admin,
        body: { name: 'ci', password: 'a long passphrase', role: 'viewer' },
      }),
    );
    check(
      'updateUser',
      await api.call('PATCH', '/api/v1/users/ci', { token: admin, body: { role: 'admin' } }),
    );
    check('listUsers', await api.call('GET', '/api/v1/users', { token: admin }));
    for (let i = 0; i < 2; i++)
      check(
        'setSecret',
        await api.call('PUT', '/api/v1/secrets/DEPLOY_TOKEN', {
          token: admin,
          body: { value: 'the value tasks see' },
        }),
      );
    check('listSecrets', await api.call('GET', '/api/v1/secrets', { token: admin }));
    check('listAuditEntries', await api.call('GET', '/api/v1/audit', { token: admin }));
  });

  it('matches the schemas on the routes a backup answers its primary', async () => {
    const secret = 's'.repeat(40);
    // It ran the cluster once: it has history to hand back (none but what the test adds).
    const takeover = {
      term: 4,
      at: new Date(0).toISOString(),
      activeBuildIds: [],
      maxBuildId: 0,
      maxLogId: 0,
      maxTokenId: 0,
    };
    const backup = await testApi(() => {
      const ha: HaStatus = {
        role: () => 'backup-standby',
        term: () => 4,
        primary: undefined,
        backup: {
          statusView: () => {
            throw new Error('not used by this test');
          },
          authenticatePrimary: (given) => {
            if (given !== secret) throw new Error('the wrong secret');
          },
          stateView: () => ({ state: 'standby', term: 4, history: true }),
          beginHandback: async () => ({ term: 4, builds: [], takeover }),
          endHandback: () => {},
          takeoverRecord: () => takeover,
        },
      };
      return { ha };
    });
    try {
      const call = async (method: 'GET' | 'POST', url: string) => {
        const answer = await backup.app.inject({
          method,
          url,
          headers: { authorization: `Bearer ${secret}` },
        });
        return { status: answer.statusCode, body: answer.json<unknown>() };
      };
      checker.check('getBackupState', await call('GET', '/api/v1/ha/state'));
      checker.check('beginHandback', await call('POST', '/api/v1/ha/handback/begin'));
      const build = backup.store.createBuild(
        parsePlan('tasks:\n  t:\n    run: echo hi\n'),
        [],
        'admin',
      );
      checker.check(
        'getHandbackBuildHistory',
        await call('GET', `/api/v1/ha/history/builds/${build.id}`),
      );
      checker.check('getHandbackTokens', await call('GET', '/api/v1/ha/history/tokens'));
      checker.check('getHandbackAuditEntries', await call('GET', '/api/v1/ha/history/audit'));
      checker.check('getHandbackCacheRows', await call('GET', '/api/v1/ha/history/cache/entries'));
    } finally {
      await backup.close();
    }
  });

  it('matches the schemas on the routes a primary answers its backups and admins', async () => {
    const primary = await testApi((defaults) => ({
      ha: {
        role: () => 'primary',
        term: () => 1,
        primary: primarySideFor(
          defaults.store as Store,
          tmpdir(),
          (backup) => new AnsweringPeer(backup.url),
          'the-instance-id',
          () => Buffer.alloc(32, 7),
        ),
        backup: undefined,
      },
    }));
    try {
      const secret = 's'.repeat(40);
      checker.check(
        'registerBackup',
        await primary.call('POST', '/api/v1/ha/register', {
          body: {
            name: 'standby-1',
            url: 'http://10.0.0.9:8000',
            fingerprint: null,
            certificate: null,
            secret,
          },
        }),
      );
      const fromBackup = async (url: string) => {
        const answer = await primary.app.inject({
          method: 'GET',
          url,
          headers: { authorization: `Bearer ${secret}`, 'x-muster-backup': 'standby-1' },
        });
        return { status: answer.statusCode, body: answer.json<unknown>() };
      };
      const select = async (name: string | null) =>
        primary.call('PUT', '/api/v1/backups/selected', { token: primary.admin, body: { name } });
      // Not selected yet: the heartbeat's answer says little.
      checker.check('sendBackupHeartbeat', await fromBackup('/api/v1/ha/heartbeat'));
      checker.check('selectBackup', await select('standby-1'));
      const heartbeat = await fromBackup('/api/v1/ha/heartbeat');
      checker.check('sendBackupHeartbeat', heartbeat);
      const { stream } = heartbeat.body as HeartbeatView;
      checker.check(
        'streamReplicationChanges',
        await fromBackup(`/api/v1/ha/changes?stream=${String(stream)}&after=0`),
      );
      checker.check('getReplicatedSecretsKey', await fromBackup('/api/v1/ha/secrets-key'));
      checker.check(
        'listBackups',
        await primary.call('GET', '/api/v1/backups', { token: primary.viewer }),
      );
      checker.check('selectBackup', await select(null));
    } finally {
      await primary.close();
    }
  });

  it('reaches most operations with a JSON answer', () => {
    const json = operations.filter((op) => (op.reply ?? 'json') === 'json');
    const missed = json.filter((op) => !checker.reached.has(op.operationId));
    console.log(
      `response schemas checked on ${checker.reached.size} of ${json.length} JSON operations; not reached: ${missed.map((op) => op.operationId).join(', ')}`,
    );
    assert.ok(checker.reached.size >= 55, `${checker.reached.size} reached`);
  });
});
