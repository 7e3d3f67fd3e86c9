/**
 * The request bodies and queries the OpenAPI document names in its components: the very zod
 * schemas the routes validate with, converted by z.toJSONSchema (the shape a client sends, so
 * defaults are optional). Examples for the main requests are checked against them by Redocly.
 */
import { z } from 'zod';
import {
  addAgentBody,
  addExtensionBody,
  cacheLookupBody,
  changePasswordBody,
  closeCompileSessionBody,
  compileJobBody,
  compileRecordsBody,
  createBuildBody,
  createCompileSessionBody,
  createJoinTokenBody,
  createUserBody,
  listBuildsQuery,
  cacheDirectsQuery,
  loginBody,
  logsQuery,
  missingBlobsBody,
  probeAgentBody,
  putCacheEntryBody,
  putCacheResultsBody,
  putCertificateBody,
  putManifestLineBody,
  putToolchainBody,
  selectBackupBody,
  setSecretBody,
  setSettingBody,
  updateAgentBody,
  updateUserBody,
} from '../../api/requests.js';
import { auditQuery } from './audit-routes.js';
import {
  auditHistoryQuery,
  cacheHistoryQuery,
  changesQuery,
  heartbeatQuery,
  historyQuery,
  registerBody,
} from './ha-routes.js';

export const requestSchemas = {
  LoginRequest: loginBody,
  ChangePasswordRequest: changePasswordBody,
  AddAgentRequest: addAgentBody,
  ProbeAgentRequest: probeAgentBody,
  UpdateAgentRequest: updateAgentBody,
  CreateJoinTokenRequest: createJoinTokenBody,
  AddExtensionRequest: addExtensionBody,
  MissingBlobsRequest: missingBlobsBody,
  CreateBuildRequest: createBuildBody,
  CreateCompileSessionRequest: createCompileSessionBody,
  CompileRecordsRequest: compileRecordsBody,
  CompileJobRequest: compileJobBody,
  CloseCompileSessionRequest: closeCompileSessionBody,
  CacheLookupRequest: cacheLookupBody,
  PutCacheEntryRequest: putCacheEntryBody,
  PutCacheResultsRequest: putCacheResultsBody,
  PutManifestLineRequest: putManifestLineBody,
  PutToolchainRequest: putToolchainBody,
  SetSettingRequest: setSettingBody,
  PutCertificateRequest: putCertificateBody,
  CreateUserRequest: createUserBody,
  UpdateUserRequest: updateUserBody,
  SelectBackupRequest: selectBackupBody,
  SetSecretRequest: setSecretBody,
  RegisterBackupRequest: registerBody,
} satisfies Record<string, z.ZodType>;

export type RequestSchemaName = keyof typeof requestSchemas;

export const querySchemas = {
  ListBuildsQuery: listBuildsQuery,
  LogsQuery: logsQuery,
  AuditQuery: auditQuery,
  HeartbeatQuery: heartbeatQuery,
  ChangesQuery: changesQuery,
  HistoryQuery: historyQuery,
  AuditHistoryQuery: auditHistoryQuery,
  CacheHistoryQuery: cacheHistoryQuery,
  CacheDirectsQuery: cacheDirectsQuery,
} satisfies Record<string, z.ZodType>;

export type QuerySchemaName = keyof typeof querySchemas;

const HELLO_SHA256 = '5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03';

/** Examples of the main requests, shown with their operations. */
export const requestExamples: Partial<Record<RequestSchemaName, unknown>> = {
  LoginRequest: { user: 'admin', password: 'correct horse battery' },
  CreateBuildRequest: {
    plan: 'name: hello\ntasks:\n  greet:\n    run: cat hello.txt\n    inputs: [hello.txt]\n',
    files: [{ path: 'hello.txt', sha256: HELLO_SHA256, size: 6, mode: 0o644 }],
  },
  MissingBlobsRequest: { hashes: [HELLO_SHA256] },
  AddAgentRequest: {
    name: 'builder-1',
    address: 'builder-1.internal:7420',
    accessKey: 'the key muster agent printed',
    labels: ['linux', 'x64'],
    slots: 8,
  },
  CreateJoinTokenRequest: { labels: ['linux'], autoApprove: false, expires: '24h' },
  CreateUserRequest: { name: 'ci', password: 'a long passphrase', role: 'viewer' },
  SetSecretRequest: { value: 'the value tasks see' },
};

/** A zod schema as an OpenAPI 3.1 schema object (JSON Schema 2020-12 without `$schema`). */
export function jsonSchemaOf(schema: z.ZodType): Record<string, unknown> {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<
    string,
    unknown
  >;
  delete json.$schema;
  return json;
}
