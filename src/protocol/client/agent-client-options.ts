/** What a coordinator says when it connects to an agent: where, with which key, as whom. */

/** Pin the agent's certificate by fingerprint, trust a CA, or (explicitly) plain TCP. */
export type AgentTls =
  | { fingerprint: string; servername?: string }
  | { ca: string | Buffer; servername?: string }
  | false;

export interface AgentClientOptions {
  host: string;
  port: number;
  accessKey: string;
  tls: AgentTls;
  product: string;
  productVersion: string;
  instanceId?: string;
  clusterId?: string;
  leaseTerm?: number;
  /** This coordinator among those of its cluster (see hello.holderId). */
  holderId?: string;
  /**
   * The coordinator's instance key (Ed25519 private key, PEM): needed to claim an instanceId or a
   * clusterId, which the agent binds to the first key that claims them.
   */
  instanceKey?: string;
  /** Bind the client socket to this local address (tests use 127.0.0.x as distinct sources). */
  localAddress?: string;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  maxFrameBytes?: number;
}
