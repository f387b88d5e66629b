// The session gateways' public surface for the broker: the kinds' registry, the host a gateway
// is given, the live-session registry and the recorder (docs/gateways.md).
export { GATEWAYS, GATEWAY_ENTRY, gatewayKind, loadGateways } from './registry.ts';
export type { Gateway, GatewayBase, GatewayConfig, GatewayDeps, GatewayPlugin } from './registry.ts';
export type { GatewayApprovalRequest, GatewayDecision, GatewayDecisionRequest, GatewayHost, GatewayLease, GatewayLeaseRequest, GatewayPrincipal, GatewayProof } from './host.ts';
export { SessionRecorder, SessionRegistry, isSessionId, newSessionId } from './sessions.ts';
export type { LiveSession, LiveSessionSpec, Revalidate, SessionHangs } from './sessions.ts';
