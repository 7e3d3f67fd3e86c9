/**
 * The coordinator's API as the web UI uses it: same origin, the session cookie (HttpOnly, set at
 * login), and the session's CSRF token on every change. Errors carry the API's code and message.
 */
import type {
  AgentView,
  BackupView,
  BuildSummary,
  BuildView,
  LogsView,
  SessionView,
  StatusView,
  TaskView,
} from '../../src/coordinator/api/schemas.js';

export type {
  AgentView,
  BackupView,
  BuildSummary,
  BuildView,
  LogsView,
  SessionView,
  StatusView,
  TaskView,
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

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET') headers['x-csrf-token'] = csrf;
  let response: Response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method,
      headers,
      credentials: 'same-origin',
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch {
    throw new ApiError('UNREACHABLE', 'the coordinator cannot be reached: check the network', 0);
  }
  if (response.status === 204) return undefined as T;
  const data = (await response.json().catch(() => ({}))) as {
    error?: { code?: string; message?: string; details?: { problems?: string[] } };
  };
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

export const getStatus = () => call<StatusView>('GET', '/status');
export const getAgents = () => call<AgentView[]>('GET', '/agents');
export const getBuilds = () => call<BuildSummary[]>('GET', '/builds?limit=20');
export const listBuilds = (status: string) =>
  call<BuildSummary[]>('GET', `/builds?limit=100${status ? `&status=${status}` : ''}`);
export const createBuild = (plan: string) =>
  call<BuildView>('POST', '/builds', { plan, files: [] });

export const getBackups = () => call<BackupView[]>('GET', '/backups');
export const selectBackup = (name: string | null) =>
  call<BackupView[]>('PUT', '/backups/selected', { name });
export const getSettings = () => call<Record<string, unknown>>('GET', '/settings');
export const getBuild = (id: number) => call<BuildView>('GET', `/builds/${id}`);
export const cancelBuild = (id: number) => call<BuildView>('POST', `/builds/${id}/cancel`);
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
export interface SettingDefinition {
  key: string;
  value: unknown;
  description: string;
}
export const getSettingDefinitions = () => call<SettingDefinition[]>('GET', '/setting-definitions');
export const setSetting = (key: string, value: unknown) =>
  call<{ key: string; value: unknown }>('PUT', `/settings/${encodeURIComponent(key)}`, { value });
export type CertificateView =
  | {
      tls: true;
      subject: string;
      issuer: string;
      subjectAltName: { dns: string[]; ips: string[] };
      validFrom: string;
      validTo: string;
      fingerprint256: string;
      selfSigned: boolean;
      chainLength: number;
      files: { certificate: string; key: string };
    }
  | { tls: false; message: string };
export interface CertificateReplaced {
  certificate: Extract<CertificateView, { tls: true }>;
  backup: { name: string; confirmed: boolean; message: string } | null;
}
export const getCertificate = () => call<CertificateView>('GET', '/certificate');
export const putCertificate = (certificate: string, key: string) =>
  call<CertificateReplaced>('PUT', '/certificate', { certificate, key });
