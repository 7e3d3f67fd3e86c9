/** The one error format of the API; the codes are docs/errors.md's (src/protocol/errors.ts). */

export interface ApiErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}
