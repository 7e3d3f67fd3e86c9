/** Secrets as the API shows them (GET /api/v1/secrets, `muster secrets list --json`, Admin › Secrets): never a value. */
export interface SecretView {
  name: string;
  /** The admin who set it last. */
  setBy: string;
  /** ISO-8601 UTC. */
  setAt: string;
}
