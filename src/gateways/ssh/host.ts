// What the SSH gateway needs from the broker, narrowed to its own calls: the user CA, certificate
// leases, Cedar decisions, upstream issuance, the `session` audit stream, the live-session registry.
// The broker's GatewayHost (src/gateways/plugin.ts) is adapted to this in index.ts.

/** A certificate's lease as the gateway needs it (looked up by serial). */
export interface CertificateLease {
  id: string;
  identityId: string;
  target: string;
  active: boolean;
  /** The login session (jti) the certificate was issued under, when any. */
  sessionId: string | null;
  grantId: string | null;
}

export interface GatewayDecision {
  allowed: boolean;
  decisionId: string;
}

/** What a live session hangs on: revoking any of them ends it (live-session registry). */
export interface SessionBindings {
  identityId: string;
  loginSession?: string | null;
  leaseIds: string[];
  grantId?: string | null;
}

export interface SshGatewayHost {
  now(): number;
  /** Portcullis' SSH user CA public key line (`ssh-ed25519 AAAA…`). */
  userCaPublicKey(): string;
  /** The lease of an SSH certificate by serial, or undefined. */
  certificateLease(serial: string): Promise<CertificateLease | undefined>;
  /** A Cedar decision for `identityId` (authz-audited by the broker). Errors fail closed (throw). */
  decide(req: { identityId: string; action: string; resource: { type: string; id: string }; context: Record<string, unknown>; sessionId?: string | null }): Promise<GatewayDecision>;
  /**
   * Issues an SSH certificate through the normal credential path, tied to the gateway session. Its
   * principals are those the credential target maps for the identity; the account is the SSH login.
   */
  issueCertificate(req: { identityId: string; target: string; publicKey: string; ttlMs: number; purpose: string; gatewaySession: string; loginSession?: string | null }): Promise<{ leaseId: string; certificate: string }>;
  revokeLease(leaseId: string, reason: string): Promise<void>;
  /** Appends one record to the `session` audit stream; resolves once durable. */
  record(type: string, actor: string, payload: Record<string, unknown>): Promise<void>;
  /** Authentication failures go to the authn stream. */
  authnFailure(reason: string, detail: Record<string, unknown>): Promise<void>;
  /** Registers a live session; `terminate` is called when what it hangs on is revoked. Returns the unregister. */
  register(session: { id: string; gateway: string; target: string; bindings: SessionBindings; terminate(reason: string): void }): () => void;
  /** A fresh gateway session id (`gws_…`). */
  newSessionId(): string;
}
