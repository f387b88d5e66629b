// Public surface of the credentials domain, for server/ and cli/ to wire.
export { createCredentialService, CredentialService } from './service.ts';
export type { CredentialServiceOptions, ExchangeInput, IssueInput, Issued, ReconcileReport } from './service.ts';
export { validateTargets } from './config.ts';
export type { ApiTarget, PostgresTarget, SpiffeX509Target, SshTarget, TargetConfig } from './config.ts';
export { parseSelector, storedFacts } from './revocation.ts';
export type { BulkRevocationResult, RevalidationResult, RevocationResolvers, RevocationSelector, RevokeOutcome } from './revocation.ts';
export { LeaseNotActive, TargetError, TokenExchangeRefused } from './errors.ts';
export { actorsOf, delegate, parseScopes, verifyAccessToken } from './access-token.ts';
export type { ActClaim, Delegation, DelegationInput, VerifiedAccessToken } from './access-token.ts';
export { generateSshCa, sshCaFromKey } from './ssh.ts';
export type { SshCa } from './ssh.ts';
export { parseUserCertificate } from './ssh-cert.ts';
export { createIntermediate, generateSpiffeRoot, identityForSpiffeId, spiffeIdFor } from './x509-svid.ts';
export { SpiffeCaStore } from './spiffe-ca.ts';
export type { SpiffeAuthority, SpiffeBundle } from './spiffe-ca.ts';
export type { CaMaterial } from './x509-svid.ts';
export { LEASE_STATUSES } from './types.ts';
export type { CredentialFacts, CredentialIssuer, Decide, DecisionRequest, DelegationFacts, GrantFacts, JwtSigner, Lease, LeaseStatus, SessionFacts, TargetKind } from './types.ts';
