/** One error shape for the whole API: `{ error: { code, message, details? } }` with a fitting status. */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { MusterError, type ErrorCode } from '../../protocol/errors.js';

const statusOf: Partial<Record<ErrorCode, number>> = {
  UNAUTHORIZED: 401,
  AUTH_FAILED: 401,
  FORBIDDEN: 403,
  READ_ONLY: 403,
  NOT_FOUND: 404,
  TASK_NOT_FOUND: 404,
  TOOLCHAIN_NOT_FOUND: 404,
  TOOLCHAIN_INCOMPATIBLE: 422,
  BLOB_NOT_FOUND: 400,
  CONFLICT: 409,
  LAST_ADMIN: 409,
  WRONG_PASSWORD: 403,
  VALIDATION_FAILED: 400,
  INVALID_MESSAGE: 400,
  PLAN_INVALID: 400,
  INVALID_PATH: 400,
  INVALID_MANIFEST: 400,
  BLOB_HASH_MISMATCH: 400,
  BLOB_SIZE_MISMATCH: 400,
  PAYLOAD_TOO_LARGE: 413,
  UPLOAD_QUOTA_EXCEEDED: 413,
  RATE_LIMITED: 429,
  STORAGE_ERROR: 507,
  UNREACHABLE: 502,
  STANDBY: 503,
  NOT_SELECTED: 403,
  SNAPSHOT_REQUIRED: 409,
  BACKUP_UNVERIFIED: 409,
  TLS_FINGERPRINT_MISMATCH: 502,
  TLS_NOT_ENABLED: 409,
  CERT_INVALID: 400,
  CERT_KEY_INVALID: 400,
  CERT_KEY_ENCRYPTED: 400,
  CERT_KEY_MISMATCH: 422,
  CERT_EXPIRED: 422,
  CERT_NOT_YET_VALID: 422,
  CERT_HOST_MISMATCH: 422,
  CERT_WRITE_FAILED: 500,
  COMPILE_SESSION_CLOSED: 409,
  BUILD_NOT_ENDED: 409,
  TOO_MANY_COMPILE_SESSIONS: 429,
  CACHE_CLIENT_RESULTS_REFUSED: 403,
  TOO_MANY_TOOLCHAINS: 429,
  SECRET_NOT_FOUND: 404,
  SECRET_UNREADABLE: 500,
};

export function httpStatusOf(code: ErrorCode): number {
  return statusOf[code] ?? 500;
}

/** The codes the API answers with this status (500: INTERNAL and those mapped to it). */
export function codesWithStatus(status: number): ErrorCode[] {
  const codes = (Object.keys(statusOf) as ErrorCode[]).filter((code) => statusOf[code] === status);
  return status === 500 ? ['INTERNAL', ...codes] : codes;
}

export function sendError(reply: FastifyReply, err: MusterError): FastifyReply {
  return reply.code(httpStatusOf(err.code)).send({ error: err.toWire() });
}

/** Parses with a zod schema or throws VALIDATION_FAILED naming every problem. */
export function parse<T extends z.ZodType>(schema: T, value: unknown, what: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => `${i.path.join('.') || what}: ${i.message}`);
  throw new MusterError('VALIDATION_FAILED', `invalid ${what}: ${problems.join('; ')}`, {
    problems,
  });
}

export function errorHandler(
  err: FastifyError | MusterError | Error,
  request: FastifyRequest,
  reply: FastifyReply,
): void {
  if (err instanceof MusterError) {
    if (httpStatusOf(err.code) >= 500) request.log.error({ err }, err.message);
    void sendError(reply, err);
    return;
  }
  const fastifyError = err as FastifyError;
  if (fastifyError.statusCode === 413 || fastifyError.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    void sendError(
      reply,
      new MusterError('PAYLOAD_TOO_LARGE', 'the request body is larger than the limit'),
    );
    return;
  }
  if (fastifyError.statusCode !== undefined && fastifyError.statusCode < 500) {
    void sendError(reply, new MusterError('VALIDATION_FAILED', fastifyError.message));
    return;
  }
  if (request.raw.socket?.destroyed) {
    // The client hung up before its request was read ("aborted"): nobody to answer, and no
    // fault of the server's. Logged as an error, any peer could fill the log with them.
    request.log.info({ code: (err as NodeJS.ErrnoException).code }, 'the client went away');
    void sendError(reply, new MusterError('VALIDATION_FAILED', 'the request was cut off'));
    return;
  }
  request.log.error({ err }, 'request failed');
  void sendError(reply, new MusterError('INTERNAL', 'internal error; see the coordinator log'));
}
