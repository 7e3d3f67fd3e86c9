/** The OpenAPI 3.1 document served at /api/v1/openapi.json; request schemas come from zod. */
import { z } from 'zod';
import {
  cacheLookupBody,
  closeCompileSessionBody,
  compileJobBody,
  compileRecordsBody,
  createCompileSessionBody,
  putCacheEntryBody,
  putCacheResultsBody,
  putManifestLineBody,
  putToolchainBody,
  addAgentBody,
  addExtensionBody,
  createBuildBody,
  changePasswordBody,
  createUserBody,
  loginBody,
  missingBlobsBody,
  probeAgentBody,
  putCertificateBody,
  selectBackupBody,
  setSecretBody,
  setSettingBody,
  updateUserBody,
  updateAgentBody,
} from '../../api/requests.js';

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

interface Route {
  method: Method;
  path: string;
  summary: string;
  body?: z.ZodType;
  raw?: boolean;
  status?: number;
  public?: boolean;
}

const routes: Route[] = [
  {
    method: 'post',
    path: '/api/v1/login',
    summary: 'Log in; returns a bearer token',
    body: loginBody,
    public: true,
  },
  { method: 'post', path: '/api/v1/logout', summary: 'Revoke the token used', status: 204 },
  {
    method: 'post',
    path: '/api/v1/session/login',
    summary: 'Log in for the web UI: the token goes into the HttpOnly session cookie',
    body: loginBody,
    public: true,
  },
  { method: 'get', path: '/api/v1/session', summary: "The session cookie's user and CSRF token" },
  {
    method: 'post',
    path: '/api/v1/session/logout',
    summary: 'Revoke the session and clear its cookie',
    status: 204,
  },
  {
    method: 'put',
    path: '/api/v1/session/password',
    summary: "Change one's own password (the current one proves it); ends one's other sessions",
    body: changePasswordBody,
    status: 204,
  },
  { method: 'get', path: '/api/v1/whoami', summary: 'The authenticated user' },
  { method: 'get', path: '/api/v1/status', summary: 'Role, version, instance id, counts' },
  {
    method: 'get',
    path: '/api/v1/banner',
    summary: "A backup's role and its primary's URL, for the login page (public)",
    public: true,
  },
  {
    method: 'get',
    path: '/api/v1/agents',
    summary: 'Agents with status, slots, labels, last error',
  },
  {
    method: 'post',
    path: '/api/v1/agents',
    summary: 'Add an agent (admin)',
    body: addAgentBody,
    status: 201,
  },
  { method: 'get', path: '/api/v1/agents/{name}', summary: 'One agent' },
  {
    method: 'post',
    path: '/api/v1/agents/probe',
    summary: 'The certificate fingerprint an agent presents, to confirm before adding it (admin)',
    body: probeAgentBody,
  },
  {
    method: 'patch',
    path: '/api/v1/agents/{name}',
    summary: 'Change labels or slots (admin)',
    body: updateAgentBody,
  },
  {
    method: 'delete',
    path: '/api/v1/agents/{name}',
    summary: 'Remove an agent (admin)',
    status: 204,
  },
  { method: 'get', path: '/api/v1/extensions', summary: 'Extensions shipped to agents' },
  {
    method: 'post',
    path: '/api/v1/extensions',
    summary: 'Add or replace an extension (admin); upload its files first',
    body: addExtensionBody,
    status: 201,
  },
  {
    method: 'delete',
    path: '/api/v1/extensions/{name}',
    summary: 'Remove an extension (admin)',
    status: 204,
  },
  {
    method: 'post',
    path: '/api/v1/blobs/missing',
    summary: 'Which of these hashes the coordinator lacks',
    body: missingBlobsBody,
  },
  {
    method: 'put',
    path: '/api/v1/blobs/{sha256}',
    summary: 'Upload a blob (verified by hash)',
    raw: true,
    status: 204,
  },
  { method: 'get', path: '/api/v1/blobs/{sha256}', summary: 'Download a blob' },
  {
    method: 'post',
    path: '/api/v1/builds',
    summary: 'Submit a build: plan YAML and input files',
    body: createBuildBody,
    status: 201,
  },
  {
    method: 'get',
    path: '/api/v1/builds',
    summary: 'Builds, newest first (?status, ?limit, ?before)',
  },
  { method: 'get', path: '/api/v1/builds/{id}', summary: 'A build with its tasks' },
  { method: 'post', path: '/api/v1/builds/{id}/cancel', summary: 'Cancel a build' },
  {
    method: 'delete',
    path: '/api/v1/builds/{id}',
    summary: 'Delete an ended build with its tasks, attempts and logs (admin)',
    status: 204,
  },
  {
    method: 'get',
    path: '/api/v1/builds/{id}/logs',
    summary: 'Log chunks (?task, ?after, ?limit)',
  },
  { method: 'get', path: '/api/v1/builds/{id}/attempts', summary: 'Every attempt of every task' },
  {
    method: 'post',
    path: '/api/v1/compile-sessions',
    summary:
      "Open a compile session (muster build): an open build for its jobs, the session's key (the build's uid, for {id} below), and the pool's capacity",
    body: createCompileSessionBody,
    status: 201,
  },
  {
    method: 'post',
    path: '/api/v1/compile-sessions/{id}/records',
    summary:
      "Report jobs that ran on the client or came from the cache (also the session's heartbeat)",
    body: compileRecordsBody,
    status: 204,
  },
  {
    method: 'post',
    path: '/api/v1/compile-sessions/{id}/jobs',
    summary:
      'Run one compile on an agent that has its toolchain; answers when it ends (or not-started, with the reason)',
    body: compileJobBody,
  },
  {
    method: 'post',
    path: '/api/v1/compile-sessions/{id}/close',
    summary: "Close a compile session with its command's exit code; returns the build",
    body: closeCompileSessionBody,
  },
  {
    method: 'post',
    path: '/api/v1/cache/lookup',
    summary: "A direct key's manifest and the cache entries asked for or led to, in one round trip",
    body: cacheLookupBody,
  },
  {
    method: 'put',
    path: '/api/v1/cache/entries/{key}',
    summary: "Store a compile's result (its blobs uploaded first); 200 with the row already there",
    body: putCacheEntryBody,
    status: 201,
  },
  {
    method: 'post',
    path: '/api/v1/cache/results',
    summary:
      'Store several results and their manifest lines in one round trip, small blobs inline (base64); each result answered kept or why not',
    body: putCacheResultsBody,
  },
  {
    method: 'post',
    path: '/api/v1/cache/manifests/{direct}',
    summary: "Add a line to a direct key's manifest: with these includes, that entry",
    body: putManifestLineBody,
    status: 201,
  },
  {
    method: 'put',
    path: '/api/v1/toolchains/{id}',
    summary:
      "Register a compiler by its files' hashes (uploaded as blobs first); agents get it with the next bundle",
    body: putToolchainBody,
    status: 201,
  },
  {
    method: 'get',
    path: '/api/v1/toolchains/{id}',
    summary: 'A registered toolchain, and the connected agents that can run it now',
  },
  {
    method: 'get',
    path: '/api/v1/toolchains',
    summary:
      'Every registered toolchain, most recently used first, and whether agents get it (admin)',
  },
  {
    method: 'delete',
    path: '/api/v1/toolchains/{id}',
    summary: 'Remove a toolchain: agents get a bundle without it (admin)',
    status: 204,
  },
  {
    method: 'get',
    path: '/api/v1/events',
    summary: 'Server-sent events: build, task, log, agent (?build)',
  },
  { method: 'get', path: '/api/v1/settings', summary: 'All settings' },
  {
    method: 'get',
    path: '/api/v1/setting-definitions',
    summary: 'The settings an admin may change, with values and explanations',
  },
  { method: 'get', path: '/api/v1/settings/{key}', summary: 'One setting with its explanation' },
  {
    method: 'put',
    path: '/api/v1/settings/{key}',
    summary: 'Change a setting (admin)',
    body: setSettingBody,
  },
  {
    method: 'get',
    path: '/api/v1/certificate',
    summary: 'The TLS certificate this coordinator serves, or { tls: false } over plain HTTP',
  },
  {
    method: 'put',
    path: '/api/v1/certificate',
    summary: 'Replace the TLS certificate and key, validated, without a restart (admin, primary)',
    body: putCertificateBody,
  },
  { method: 'get', path: '/api/v1/users', summary: 'Users (admin)' },
  {
    method: 'post',
    path: '/api/v1/users',
    summary: 'Create a user (admin)',
    body: createUserBody,
    status: 201,
  },
  {
    method: 'patch',
    path: '/api/v1/users/{name}',
    summary: "Change a user's role or password (admin); a new password ends their sessions",
    body: updateUserBody,
  },
  { method: 'delete', path: '/api/v1/users/{name}', summary: 'Delete a user (admin)', status: 204 },
  { method: 'get', path: '/api/v1/backups', summary: 'Backup coordinators registered here' },
  {
    method: 'put',
    path: '/api/v1/backups/selected',
    summary: 'Select one backup, or none with null (admin, on the primary)',
    body: selectBackupBody,
  },
  {
    method: 'delete',
    path: '/api/v1/backups/{name}',
    summary: 'Remove a registered backup (admin, on the primary)',
    status: 204,
  },
  {
    method: 'get',
    path: '/api/v1/audit',
    summary:
      'The audit log of administrative changes, newest first (admin); query: limit, before (id), action, actor',
  },
  {
    method: 'get',
    path: '/api/v1/secrets',
    summary: 'Secrets: names, who set them and when, never values (admin)',
  },
  {
    method: 'put',
    path: '/api/v1/secrets/{name}',
    summary: 'Set a secret (admin, on the primary): 201 when new, 200 when replaced; write-only',
    body: setSecretBody,
  },
  {
    method: 'delete',
    path: '/api/v1/secrets/{name}',
    summary: 'Delete a secret (admin, on the primary)',
    status: 204,
  },
];

const errorSchema = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: {
        code: { type: 'string' },
        message: { type: 'string' },
        details: { type: 'object' },
      },
      required: ['code', 'message'],
    },
  },
};

export function openApiDocument(version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const parameters = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => ({
      name: m[1],
      in: 'path',
      required: true,
      schema: { type: 'string' },
    }));
    paths[route.path] ??= {};
    paths[route.path]![route.method] = {
      summary: route.summary,
      ...(parameters.length ? { parameters } : {}),
      ...(route.public ? { security: [] } : {}),
      ...(route.body
        ? {
            requestBody: {
              required: true,
              content: {
                'application/json': { schema: z.toJSONSchema(route.body, { io: 'input' }) },
              },
            },
          }
        : {}),
      ...(route.raw
        ? { requestBody: { required: true, content: { 'application/octet-stream': {} } } }
        : {}),
      responses: {
        [String(route.status ?? 200)]: { description: 'success' },
        default: { description: 'error', content: { 'application/json': { schema: errorSchema } } },
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Muster coordinator API', version },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    security: [{ bearer: [] }],
    paths,
  };
}
