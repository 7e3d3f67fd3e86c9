/**
 * The coordinator's API as the web UI uses it: same origin, the session cookie (HttpOnly, set at
 * login), and the session's CSRF token on every change. Errors carry the API's code and message.
 */
import type {
  AgentFactsView,
  AgentView,
  CreatedJoinTokenView,
  JoinTokenView,
} from '../../src/api/views/agents.js';
import type { AuditView } from '../../src/api/views/audit.js';
import type { BannerView, StatusView } from '../../src/api/views/status.js';
import type { BackupView } from '../../src/api/views/backups.js';
import type { BuildSummary, BuildView, LogsView, TaskView } from '../../src/api/views/builds.js';
import type {
  CertificateReplacedView,
  CertificateView as ServedCertificate,
  PlainHttpView,
} from '../../src/api/views/certificates.js';
import type { ExtensionView } from '../../src/api/views/extensions.js';
import type { SecretView } from '../../src/api/views/secrets.js';
import type { SessionView, UserView } from '../../src/api/views/users.js';

export type {
  AgentFactsView,
  AgentView,
  AuditView,
  BannerView,
  BackupView,
  BuildSummary,
  BuildView,
  CreatedJoinTokenView,
  ExtensionView,
  JoinTokenView,
  LogsView,
  SecretView,
  SessionView,
  StatusView,
  TaskView,
  UserView,
};

export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
    readonly details: { problems?: string[] } = {},
  ) {
    super(message);
  }
}

let csrf = '';

/** Dispatched on window when the coordinator no longer knows this page's session. */
export const SESSION_ENDED = 'muster:session-ended';

/** A JSON body, or a file (Blob) sent as it is. */
async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const raw = body instanceof Blob;
  if (body !== undefined)
    headers['content-type'] = raw ? 'application/octet-stream' : 'application/json';
  if (method !== 'GET') headers['x-csrf-token'] = csrf;
  let response: Response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method,
      headers,
      credentials: 'same-origin',
      ...(body === undefined ? {} : { body: raw ? body : JSON.stringify(body) }),
    });
  } catch {
    throw new ApiError('UNREACHABLE', 'the coordinator cannot be reached: check the network', 0);
  }
  if (response.status === 204) return undefined as T;
  const data = (await response.json().catch(() => ({}))) as {
    error?: { code?: string; message?: string; details?: { problems?: string[] } };
  };
  if (response.status === 401 && !path.startsWith('/session')) {
    // The session ended under the page (logged out elsewhere, a new password, expiry, deleted).
    window.dispatchEvent(new Event(SESSION_ENDED));
  }
  if (!response.ok) {
    throw new ApiError(
      data.error?.code ?? 'INTERNAL',
      data.error?.message ?? `the coordinator answered HTTP ${response.status}`,
      response.status,
      data.error?.details ?? {},
    );
  }
  return data as T;
}

export async function logIn(user: string, password: string): Promise<SessionView> {
  const session = await call<SessionView>('POST', '/session/login', { user, password });
  csrf = session.csrf;
  return session;
}

/** The current session, or undefined when not logged in. */
export async function currentSession(): Promise<SessionView | undefined> {
  try {
    const session = await call<SessionView>('GET', '/session');
    csrf = session.csrf;
    return session;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return undefined;
    throw err;
  }
}

export async function logOut(): Promise<void> {
  await call('POST', '/session/logout');
  csrf = '';
}

export type Role = UserView['role'];
export const listUsers = () => call<UserView[]>('GET', '/users');
export const createUser = (name: string, role: Role, password: string) =>
  call<UserView>('POST', '/users', { name, role, password });
export const updateUser = (name: string, change: { role?: Role; password?: string }) =>
  call<UserView>('PATCH', `/users/${encodeURIComponent(name)}`, change);
export const deleteUser = (name: string) =>
  call<undefined>('DELETE', `/users/${encodeURIComponent(name)}`);
export const changePassword = (current: string, password: string) =>
  call<undefined>('PUT', '/session/password', { current, password });

/** Secrets: names, who set them and when; a value goes in and never comes back. */
export const listSecrets = () => call<SecretView[]>('GET', '/secrets');
export const setSecret = (name: string, value: string) =>
  call<SecretView>('PUT', `/secrets/${encodeURIComponent(name)}`, { value });
export const deleteSecret = (name: string) =>
  call<undefined>('DELETE', `/secrets/${encodeURIComponent(name)}`);

export const getStatus = () => call<StatusView>('GET', '/status');
/** Public: for the login page, before there is a session. */
export const getBanner = () => call<BannerView>('GET', '/banner');
export const getAgents = () => call<AgentView[]>('GET', '/agents');
export const getBuilds = () => call<BuildSummary[]>('GET', '/builds?limit=20');
/** A page of builds, newest first: of a status, matching a search, older than `before`. */
export const listBuilds = (filter: {
  status: string;
  q: string;
  before?: number;
  limit?: number;
}) => {
  const query = new URLSearchParams({ limit: String(filter.limit ?? BUILDS_PAGE) });
  if (filter.status) query.set('status', filter.status);
  if (filter.q) query.set('q', filter.q);
  if (filter.before !== undefined) query.set('before', String(filter.before));
  return call<BuildSummary[]>('GET', `/builds?${query.toString()}`);
};
export const BUILDS_PAGE = 50;
/** A page of the audit log, newest first: of an action and an actor, older than `before`. */
export const listAudit = (filter: {
  action: string;
  actor: string;
  before?: number;
  limit: number;
}) => {
  const query = new URLSearchParams({ limit: String(filter.limit) });
  if (filter.action) query.set('action', filter.action);
  if (filter.actor) query.set('actor', filter.actor);
  if (filter.before !== undefined) query.set('before', String(filter.before));
  return call<AuditView[]>('GET', `/audit?${query.toString()}`);
};
export const createBuild = (plan: string, files: FileRef[]) =>
  call<BuildView>('POST', '/builds', { plan, files });

/** A file uploaded by content hash, at a path relative to its folder. */
export interface FileRef {
  path: string;
  sha256: string;
  size: number;
  mode: number;
}
export const missingBlobs = (hashes: string[]) =>
  call<{ missing: string[] }>('POST', '/blobs/missing', { hashes });
export const putBlob = (sha256: string, file: Blob) =>
  call<undefined>('PUT', `/blobs/${sha256}`, file);
export const listExtensions = () => call<ExtensionView[]>('GET', '/extensions');
export const addExtension = (name: string, version: string, files: FileRef[]) =>
  call<ExtensionView>('POST', '/extensions', { name, version, files });
export const removeExtension = (name: string) =>
  call<undefined>('DELETE', `/extensions/${encodeURIComponent(name)}`);

export const getBackups = () => call<BackupView[]>('GET', '/backups');
export const selectBackup = (name: string | null) =>
  call<BackupView[]>('PUT', '/backups/selected', { name });
export const getSettings = () => call<Record<string, unknown>>('GET', '/settings');
export const getBuild = (id: number) => call<BuildView>('GET', `/builds/${id}`);
export const cancelBuild = (id: number) => call<BuildView>('POST', `/builds/${id}/cancel`);
/** An ended build, with its tasks, logs and outputs (admins, on the primary). */
export const deleteBuild = (id: number) => call<void>('DELETE', `/builds/${id}`);
export const getLogs = (id: number, task: string | undefined, after: number) =>
  call<LogsView>(
    'GET',
    `/builds/${id}/logs?after=${after}&limit=1000${task ? `&task=${encodeURIComponent(task)}` : ''}`,
  );
/** Where the browser downloads a blob (the session cookie authenticates the GET). */
export const blobUrl = (sha256: string) => `/api/v1/blobs/${sha256}`;
export const probeAgent = (address: string) =>
  call<{ address: string; fingerprint: string }>('POST', '/agents/probe', { address });
export const addAgent = (body: {
  name: string;
  address: string;
  accessKey: string;
  fingerprint: string;
  labels: string[];
}) => call<AgentView>('POST', '/agents', body);
export const updateAgent = (name: string, labels: string[]) =>
  call<AgentView>('PATCH', `/agents/${encodeURIComponent(name)}`, { labels });
export const removeAgent = (name: string) =>
  call<undefined>('DELETE', `/agents/${encodeURIComponent(name)}`);
/** Lets an agent that joined with a token (status `pending`) take tasks. */
export const approveAgent = (name: string) =>
  call<AgentView>('POST', `/agents/${encodeURIComponent(name)}/approve`);
export const listJoinTokens = () => call<JoinTokenView[]>('GET', '/join-tokens');
/** How long a new join token admits agents. */
export type JoinTokenExpiry = '24h' | '7d' | 'never';
/** The answer has the token itself and the command that uses it: shown this once. */
export const createJoinToken = (body: {
  labels: string[];
  autoApprove: boolean;
  expires: JoinTokenExpiry;
}) => call<CreatedJoinTokenView>('POST', '/join-tokens', body);
export const revokeJoinToken = (id: string) =>
  call<undefined>('DELETE', `/join-tokens/${encodeURIComponent(id)}`);
export interface SettingDefinition {
  key: string;
  value: unknown;
  description: string;
  /** It may be cleared (saved empty). */
  clearable?: boolean;
}
export const getSettingDefinitions = () => call<SettingDefinition[]>('GET', '/setting-definitions');
export const setSetting = (key: string, value: unknown) =>
  call<{ key: string; value: unknown }>('PUT', `/settings/${encodeURIComponent(key)}`, { value });
export type CertificateView = ServedCertificate | PlainHttpView;
export const getCertificate = () => call<CertificateView>('GET', '/certificate');
export const putCertificate = (certificate: string, key: string) =>
  call<CertificateReplacedView>('PUT', '/certificate', { certificate, key });
