// Public surface of the credentials domain, for server/ and cli/ to wire.
export { createCredentialService, CredentialService } from './service.ts';
export type { IssueInput, Issued } from './service.ts';
export { validateTargets } from './config.ts';
export type { ApiTarget, PostgresTarget, SpiffeX509Target, SshTarget, TargetConfig } from './config.ts';
export { parseSelector, storedFacts } from './revocation.ts';
export type { BulkRevocationResult, RevalidationResult, RevocationResolvers, RevocationSelector, RevokeOutcome } from './revocation.ts';
export { LeaseNotActive, TargetError, TokenExchangeRefused } from './errors.ts';
export { actorsOf, delegate, exchange, parseScopes, verifyAccessToken } from './issuers/api/access-token.ts';
export type { ActClaim, Delegation } from './issuers/api/access-token.ts';
export { generateSshCa, sshCaFromKey } from './issuers/ssh/ssh.ts';
export type { SshCa } from './issuers/ssh/ssh.ts';
export { parseUserCertificate } from './issuers/ssh/ssh-cert.ts';
export { createIntermediate, generateSpiffeRoot, identityForSpiffeId, spiffeIdFor } from './issuers/spiffe-x509/x509-svid.ts';
export { SpiffeCaStore } from './spiffe-ca.ts';
export type { CaMaterial } from './issuers/spiffe-x509/x509-svid.ts';
export type { CredentialIssuer, Decide, DecisionRequest, DelegationFacts, GrantFacts, JwtSigner, Lease, LeaseStatus, SessionFacts, TargetKind } from './types.ts';
