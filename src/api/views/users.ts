/** Users and sessions as the API shows them (/api/v1/users, /api/v1/session, /api/v1/login). */
import type { Role } from '../status.js';

export interface UserView {
  name: string;
  role: Role;
  createdAt: string;
}

/** The web UI's session (POST /api/v1/session/login, GET /api/v1/session). */
export interface SessionView {
  user: { name: string; role: Role };
  /** Send as x-csrf-token with every change made with the session cookie. */
  csrf: string;
  expiresAt: string | null;
}

/** GET /api/v1/whoami: the authenticated user. */
export interface CurrentUserView {
  name: string;
  role: Role;
}

/** POST /api/v1/login: a bearer token for the CLI and scripts. */
export interface LoginView {
  /** Send as `Authorization: Bearer <token>`. */
  token: string;
  /** ISO time the token stops working. */
  expiresAt: string;
  user: { name: string; role: Role };
}
