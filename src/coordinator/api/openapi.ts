/**
 * The OpenAPI 3.1 document served at /api/v1/openapi.json (and as a page at /api/docs): the
 * operations of openapi-operations.ts, their request schemas from the routes' own zod schemas,
 * their answers' schemas generated from the view types the routes answer with
 * (openapi-view-schemas.ts), the one error body with the codes of each status (http-errors.ts),
 * the security schemes. Checked with Redocly's recommended rules in the tests
 * (test/unit/openapi-lint.test.ts).
 */
import { errorCodes, type ErrorCode } from '../../protocol/errors.js';
import { SESSION_COOKIE } from './auth-routes.js';
import { codesWithStatus } from './http-errors.js';
import { operations, tags, type ApiOperation, type Reply } from './openapi-operations.js';
import {
  jsonSchemaOf,
  querySchemas,
  requestExamples,
  requestSchemas,
  type QuerySchemaName,
  type RequestSchemaName,
} from './openapi-schemas.js';
import { viewSchemas } from './openapi-view-schemas.js';

type Json = Record<string, unknown>;

/** Names of the shared error responses, by status. */
const errorResponseNames: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  409: 'Conflict',
  413: 'PayloadTooLarge',
  422: 'Unprocessable',
  429: 'TooManyRequests',
  500: 'InternalError',
  502: 'BadGateway',
  503: 'Unavailable',
  507: 'InsufficientStorage',
};

const DESCRIPTION = `The HTTP API of a Muster coordinator, JSON in and out (docs/api.md).

**Credentials.** A bearer token from \`POST /api/v1/login\` (the CLI, scripts), or the web UI's
session cookie from \`POST /api/v1/session/login\`; a request authenticated by the cookie that
changes something also sends the session's CSRF token in \`x-csrf-token\`. Roles: \`admin\`
(everything) and \`viewer\` (reads only). The
coordinators' own routes (\`/api/v1/ha/…\`) take a registered backup's secret instead.

**Errors.** Every error answers \`{ "error": { "code", "message", "details"? } }\` with a stable
code (docs/errors.md); each operation lists the statuses it may answer and each status its codes.

**Not in this document.** Agents that dial out connect with a WebSocket upgrade of
\`GET /api/v1/agents/connect\` (docs/protocol.md), which is not an HTTP operation; \`/healthz\`,
\`/readyz\` and \`/metrics\` (Prometheus) are described in docs/operations.md.`;

export function openApiDocument(version: string): Json {
  const statuses = new Set<number>();
  const paths: Record<string, Json> = {};
  for (const op of operations) {
    const errors = errorStatuses(op);
    for (const status of errors) statuses.add(status);
    paths[op.path] ??= {};
    paths[op.path]![op.method] = operationObject(op, errors);
  }
  const responses: Json = {};
  const schemas: Json = {};
  for (const status of [...statuses].sort((a, b) => a - b)) {
    responses[responseName(status)] = errorResponse(status);
    schemas[`${responseName(status)}Error`] = errorBodySchema(codesWithStatus(status));
  }
  for (const [name, schema] of Object.entries(requestSchemas)) schemas[name] = jsonSchemaOf(schema);
  for (const [name, schema] of Object.entries(viewSchemas)) {
    // A view named like a request or error schema would replace it: rename the type.
    if (name in schemas) throw new Error(`the view ${name} has the name of another schema`);
    schemas[name] = schema;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Muster coordinator API',
      version,
      description: DESCRIPTION,
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: '/', description: 'The coordinator serving this document' }],
    tags,
    security: [{ bearerToken: [] }, { sessionCookie: [] }],
    paths,
    components: { schemas, responses, securitySchemes },
  };
}

const securitySchemes: Json = {
  bearerToken: {
    type: 'http',
    scheme: 'bearer',
    description: 'A token from POST /api/v1/login (`muster login` stores one).',
  },
  sessionCookie: {
    type: 'apiKey',
    in: 'cookie',
    name: SESSION_COOKIE,
    description: "The web UI's HttpOnly session cookie, set by POST /api/v1/session/login.",
  },
  csrfToken: {
    type: 'apiKey',
    in: 'header',
    name: 'x-csrf-token',
    description:
      "The session's CSRF token (GET /api/v1/session), sent with the cookie on every request that changes something.",
  },
  coordinatorSecret: {
    type: 'http',
    scheme: 'bearer',
    description:
      "Between coordinators: the secret a backup registered with (a backup also names itself in x-muster-backup); the primary's for calls to its backup.",
  },
};

/** The error statuses an operation may answer: from its access, its inputs, and its own. */
function errorStatuses(op: ApiOperation): number[] {
  // 400: any request whose URL, query or body cannot be read or does not validate.
  const statuses = new Set<number>([400, ...(op.errors ?? [])]);
  if (op.access !== 'public') statuses.add(401).add(403);
  if (op.access === 'builder') statuses.add(503);
  if (op.body !== undefined || op.rawBody) statuses.add(413);
  if (op.path.includes('{')) statuses.add(404);
  return [...statuses].sort((a, b) => a - b);
}

function operationObject(op: ApiOperation, errors: number[]): Json {
  const parameters = [...pathParameters(op.path), ...queryParameters(op.query)];
  if (op.fromBackup)
    parameters.push({
      name: 'x-muster-backup',
      in: 'header',
      required: true,
      description: 'The calling backup’s registered name.',
      schema: { type: 'string' },
    });
  const reply = successResponse(op.reply ?? 'json', op.view);
  const success: Json = { [String(op.status ?? 200)]: reply };
  if (op.alsoStatus !== undefined) success[String(op.alsoStatus)] = reply;
  const responses: Json = { ...success };
  for (const status of errors)
    responses[String(status)] = { $ref: `#/components/responses/${responseName(status)}` };
  return {
    operationId: op.operationId,
    tags: [op.tag],
    summary: op.summary,
    description: accessText[op.access],
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(op.body !== undefined ? { requestBody: jsonBody(op.body) } : {}),
    ...(op.rawBody
      ? {
          requestBody: {
            required: true,
            description: 'The blob’s bytes, with a Content-Length.',
            content: { 'application/octet-stream': { schema: { type: 'string' } } },
          },
        }
      : {}),
    responses,
    security: securityOf(op),
  };
}

const accessText: Record<ApiOperation['access'], string> = {
  public: 'No credentials needed.',
  user: 'Any logged-in user (admin or viewer).',
  builder:
    'Users whose role runs builds (admins; a viewer gets 403 FORBIDDEN), on the primary or an active backup (a backup standing by answers 503 STANDBY).',
  admin: 'Admins only; on a backup, changes are refused with READ_ONLY (make them on the primary).',
  peer: 'Another coordinator only (high availability), with its secret.',
};

function securityOf(op: ApiOperation): Json[] {
  if (op.access === 'public') return [];
  if (op.access === 'peer') return [{ coordinatorSecret: [] }];
  if (op.method === 'get') return [{ bearerToken: [] }, { sessionCookie: [] }];
  return [{ bearerToken: [] }, { sessionCookie: [], csrfToken: [] }];
}

function pathParameters(path: string): Json[] {
  return [...path.matchAll(/\{(\w+)\}/g)].map((m) => ({
    name: m[1],
    in: 'path',
    required: true,
    schema: m[1] === 'sha256' ? { type: 'string', pattern: '^[0-9a-f]{64}$' } : { type: 'string' },
  }));
}

function queryParameters(name: QuerySchemaName | undefined): Json[] {
  if (name === undefined) return [];
  const json = jsonSchemaOf(querySchemas[name]);
  const properties = (json.properties ?? {}) as Record<string, Json>;
  const required = new Set((json.required ?? []) as string[]);
  return Object.entries(properties).map(([param, schema]) => ({
    name: param,
    in: 'query',
    required: required.has(param),
    ...(typeof schema.description === 'string' ? { description: schema.description } : {}),
    schema,
  }));
}

function jsonBody(name: RequestSchemaName): Json {
  const example = requestExamples[name];
  return {
    required: true,
    content: {
      'application/json': {
        schema: { $ref: `#/components/schemas/${name}` },
        ...(example !== undefined ? { example } : {}),
      },
    },
  };
}

/** The schema of a JSON answer: its view's, or an array of them; none when it names none. */
function viewSchema(view: ApiOperation['view']): Json {
  if (view === undefined) return {};
  if (view === 'object') return { type: 'object' };
  if (typeof view === 'string') return { $ref: `#/components/schemas/${view}` };
  return { type: 'array', items: { $ref: `#/components/schemas/${view[0]}` } };
}

const successMedia: Record<Exclude<Reply, 'json'>, Json | undefined> = {
  schema: { 'application/schema+json': { schema: { type: 'object' } } },
  none: undefined,
  bytes: { 'application/octet-stream': { schema: { type: 'string' } } },
  events: { 'text/event-stream': { schema: { type: 'string' } } },
  sqlite: { 'application/vnd.sqlite3': { schema: { type: 'string' } } },
  html: { 'text/html': { schema: { type: 'string' } } },
};

function successResponse(reply: Reply, view: ApiOperation['view']): Json {
  const content =
    reply === 'json' ? { 'application/json': { schema: viewSchema(view) } } : successMedia[reply];
  return {
    description: reply === 'none' ? 'Done; no body.' : 'Success.',
    ...(content ? { content } : {}),
  };
}

function responseName(status: number): string {
  return errorResponseNames[status] ?? `Error${status}`;
}

/** The one error body, with the codes an error status may carry. */
function errorBodySchema(codes: readonly string[]): Json {
  return {
    type: 'object',
    required: ['error'],
    properties: {
      error: {
        type: 'object',
        required: ['code', 'message'],
        properties: {
          code: { type: 'string', enum: codes, description: 'Stable; see docs/errors.md.' },
          message: { type: 'string', description: 'For people.' },
          details: { type: 'object', description: 'More about some errors, by code.' },
        },
      },
    },
  };
}

function errorResponse(status: number): Json {
  const codes = codesWithStatus(status);
  const lines = codes.map((code) => `- \`${code}\`: ${errorCodes[code]}`);
  const first: ErrorCode | undefined = codes[0];
  return {
    description: `An error, with one of these codes:\n\n${lines.join('\n')}`,
    ...(status === 429
      ? {
          headers: {
            'Retry-After': {
              description: 'Seconds to wait before trying again.',
              schema: { type: 'integer' },
            },
          },
        }
      : {}),
    content: {
      'application/json': {
        schema: { $ref: `#/components/schemas/${responseName(status)}Error` },
        ...(first !== undefined
          ? { example: { error: { code: first, message: errorCodes[first] } } }
          : {}),
      },
    },
  };
}
