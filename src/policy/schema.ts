// The built-in Cedar schema for Portcullis' domain model (DESIGN.md "Domain model"), with what each
// credential issuer kind adds (credentials/issuers/registry.ts). Deployments may append their own
// entity types and actions (config `schema_extension`).
import { ISSUERS } from '../credentials/issuers/registry.ts';
import type { IssuerPlugin } from '../credentials/issuers/registry.ts';

/** Resource types whose access the boundary guard governs (data plane). */
const DATA_RESOURCE_TYPES = ['Database', 'Table', 'Host', 'Api', 'Secret', 'Tool', 'McpResource', 'Prompt'] as const;
const PRINCIPAL_TYPES = ['Workload', 'Agent', 'ServiceAccount', 'User'] as const;

/** Identity kind → Cedar principal type. */
export const PRINCIPAL_TYPE_OF_KIND: Record<string, string> = {
  workload: 'Workload',
  agent: 'Agent',
  'service-account': 'ServiceAccount',
  user: 'User',
};

/** Context keys the server fills from verified facts; a caller can never supply them. */
export const SERVER_CONTEXT_KEYS = ['authn', 'request', 'grants', 'breakGlass', 'delegation', 'bridge', 'signals'] as const;

const principals = PRINCIPAL_TYPES.join(', ');
const data = DATA_RESOURCE_TYPES.join(', ');

/**
 * The built-in schema with these issuer kinds' additions: `credential.issue` applies to each
 * kind's resource type, and each kind's own Cedar text (entity types, actions) is appended.
 */
export function builtinSchema(issuers: readonly Pick<IssuerPlugin, 'kind' | 'resourceType' | 'cedar'>[] = ISSUERS): string {
  const credentialResources = [...new Set([...DATA_RESOURCE_TYPES, ...issuers.map((i) => i.resourceType)])].join(', ');
  return `${CORE_SCHEMA.replace('{{CREDENTIAL_RESOURCES}}', credentialResources).replace('{{CREDENTIAL_KINDS}}', issuers.map((i) => i.kind).join(' | '))}${issuers.map((i) => i.cedar ?? '').join('')}`;
}

// What every decision's context holds (each action's context type starts with these).
const CTX_FIELDS = `
  authn: Authn,
  request: RequestInfo,
  purpose: Purpose,
  grants: Set<String>,
  breakGlass: Bool,
  delegation: Delegation,
  bridge: Bool,            // true when a declared bridge allows this boundary crossing
  signals: Signals,`;

const CORE_SCHEMA = `
type Authn = {
  method: String,          // oidc | spiffe-jwt | spiffe-x509 | api-key | bootstrap | authzen (asked by an app)
  trust: String,
  mfa: Bool,
  assurance: String,       // low | medium | high
  authAgeSeconds: Long,
};
type RequestInfo = {
  time: datetime,
  hour: Long,              // 0-23, UTC
  weekday: String,         // mon … sun, UTC
  sourceIp: ipaddr,
};
type Purpose = { reason?: String, ticket?: String };
type Delegation = { depth: Long, actors: Set<String> };
// Facts from Shared Signals / CAEP (docs/signals.md), always present: "unknown" / false / 0 when none was received.
type Signals = {
  assurance_level: String,       // latest assurance-level-change current_level, or "unknown"
  assurance_level_at: Long,      // its event time (s), 0 when none
  device_compliance: String,     // compliant | not-compliant | unknown
  device_compliant: Bool,        // true only when the latest device-compliance-change said compliant
  device_compliance_at: Long,
};
type Ctx = {${CTX_FIELDS}
};

// credential.issue also sees what is being issued.
type CredentialRequest = {
  kind: String,            // {{CREDENTIAL_KINDS}}
  target: String,
  permission: String,      // permission set, scopes or principals
  ttlSeconds: Long,
  renewal: Bool,
  revalidation: Bool,      // re-decided after a policy change
};
type CredentialCtx = {${CTX_FIELDS}
  credential: CredentialRequest,
};

// What a session gateway adds to the decisions it asks (docs/gateways.md): the gateway, the
// session, and for each SQL statement its kind, the tables and functions it touches (schema-
// qualified) and its fingerprint. Optional, so decisions asked through /v1/authorize need none.
type DbStatement = {
  kind: String,            // select | insert | update | delete | ddl | admin | execute | transaction | utility
  tables: Set<String>,
  functions: Set<String>,
  fingerprint: String,
};
type DbCtx = {${CTX_FIELDS}
  gateway?: String,
  session?: String,
  statement?: DbStatement,
};

// What an SSH gateway channel asks (ssh.*): the account, the channel kind and its details.
type SshRequest = {
  login: String,
  channel: String,         // login | shell | exec | subsystem | direct-tcpip | tcpip-forward | agent
  command?: String,        // exec
  subsystem?: String,      // subsystem (sftp)
  host?: String,           // forwarding: the host:port asked for
  port?: Long,
  pty?: Bool,
};
type SshCtx = {${CTX_FIELDS}
  gateway?: String,
  session?: String,
  ssh?: SshRequest,
};

// What the MCP gateway adds to mcp.* decisions (docs/agents.md "MCP gateway"): the method and
// the assignment's facts, this tool's labels and the labels of the assignment's earlier calls
// (taint), its call count in the last minute (budget), and whether a human approved it. The
// arguments are the tags of the McpCall entity in context.call (one tag per JSON path).
type McpInfo = {
  server: String,
  name: String,            // tool name, resource URI or prompt name at the upstream
  method: String,          // tools/call | tools/list | resources/read | resources/list | prompts/get | prompts/list
  assignment: String,      // "" when the token names none
  intent: String,
  sponsor: String,
  delegator: String,
  agent: String,           // the acting agent (act.sub), "" without a chain
  sourceBoundary: String,  // the boundary of the agent (of the principal without a chain)
  labels: Set<String>,     // this tool's labels (gateway config: untrusted-input, writes …)
  history: Set<String>,    // labels of the tools called before under this assignment
  called: Set<String>,     // "server/tool" called before under this assignment
  callsLastMinute: Long,   // calls of this tool under this assignment in the last 60 s (this one excluded)
  approved: Bool,          // a human approved this very call (@approval)
};
type McpArg = {
  kind: String,            // string | long | decimal | number | bool | null | array | object
  str?: String,            // string; for number: its JSON text
  long?: Long,
  decimal?: decimal,
  bool?: Bool,
  size?: Long,             // array | object: how many members
};
entity McpCall tags McpArg;
type McpCtx = {${CTX_FIELDS}
  gateway?: String,
  session?: String,
  mcp?: McpInfo,
  call?: McpCall,
};

entity Team in [Team];
entity Role in [Role];
entity Workload, Agent, ServiceAccount, User in [Team, Role] {
  kind: String,
  boundary: String,
  environment: String,
  owner?: String,
  labels: Set<String>,     // "key=value"
} tags String;             // verified claims copied from the proof (trust "attributes")

entity Database, Host, Api, Secret, Tool, McpResource, Prompt {
  boundary: String,
  environment: String,
} tags String;
entity Table in [Database] {
  boundary: String,
  environment: String,
} tags String;
// A function a statement calls (schema-qualified, e.g. pg_catalog.pg_terminate_backend).
entity Function in [Database] {
  boundary: String,
  environment: String,
} tags String;

entity ControlPlane, Policy, AuditStream, Lease, AccessRequest, Session {
  boundary: String,
  environment: String,
};
entity Identity {
  boundary: String,
  environment: String,
  owner?: String,
  kind: String,
};

action "db.read", "db.write";
action "db.select" in ["db.read"] appliesTo { principal: [${principals}], resource: [Database, Table], context: DbCtx };
action "db.insert", "db.update", "db.delete" in ["db.write"]
  appliesTo { principal: [${principals}], resource: [Database, Table], context: DbCtx };
action "db.admin" appliesTo { principal: [${principals}], resource: [Database, Table], context: DbCtx };
// The PostgreSQL gateway: admission, schema changes, and each function a statement calls.
action "db.connect" appliesTo { principal: [${principals}], resource: [Database], context: DbCtx };
action "db.ddl" appliesTo { principal: [${principals}], resource: [Database, Table], context: DbCtx };
action "db.execute" appliesTo { principal: [${principals}], resource: [Function, Database], context: DbCtx };
action "ssh.login" appliesTo { principal: [${principals}], resource: [Host], context: SshCtx };
// Each channel of an SSH gateway session (docs/gateways.md "SSH gateway").
action "ssh.shell", "ssh.exec", "ssh.subsystem", "ssh.forward_local", "ssh.forward_remote", "ssh.agent_forward"
  appliesTo { principal: [${principals}], resource: [Host], context: SshCtx };
action "api.call" appliesTo { principal: [${principals}], resource: [Api], context: Ctx };
action "secret.read" appliesTo { principal: [${principals}], resource: [Secret], context: Ctx };
action "tool.invoke" appliesTo { principal: [${principals}], resource: [Tool], context: Ctx };
// The MCP gateway (docs/agents.md): each tool call, resource read and prompt fetch; lists are filtered by the same actions.
action "mcp.call" appliesTo { principal: [${principals}], resource: [Tool], context: McpCtx };
action "mcp.read" appliesTo { principal: [${principals}], resource: [McpResource], context: McpCtx };
action "mcp.prompt" appliesTo { principal: [${principals}], resource: [Prompt], context: McpCtx };
action "credential.issue" appliesTo { principal: [${principals}], resource: [{{CREDENTIAL_RESOURCES}}], context: CredentialCtx };
action "access.request", "access.approve" appliesTo { principal: [${principals}], resource: [AccessRequest, ${data}], context: Ctx };
// Break-glass eligibility (access.break_glass.action): decided on the target with context.breakGlass = true.
action "breakglass.use" appliesTo { principal: [User], resource: [${data}], context: Ctx };
// An application asks the decision point about its own users and resources (AuthZEN, docs/authzen.md):
// decided on ControlPlane::"pdp" for the asking identity; not an admin action (a permit names the app).
action "pdp.query" appliesTo { principal: [${principals}], resource: [ControlPlane], context: Ctx };

action "admin";
action "identity.read", "identity.manage", "apikey.manage", "session.revoke" in ["admin"]
  appliesTo { principal: [${principals}], resource: [Identity], context: Ctx };
// Binding an identity to the trusts allowed to prove it (issue 8.1): its own action, since rebinding is a takeover.
action "identity.bind" in ["admin"] appliesTo { principal: [${principals}], resource: [Identity], context: Ctx };
// Changing an identity's memberships (Role/Team parents), owner or boundary: never part of
// identity.manage, and never on oneself or on what one is accountable for (docs/policy.md).
action "identity.membership.write" in ["admin"]
  appliesTo { principal: [${principals}], resource: [Identity], context: Ctx };
// An identity's effective permissions and observed use (docs/governance.md); Identity::"*" is the whole estate.
action "governance.read" in ["admin"] appliesTo { principal: [${principals}], resource: [Identity], context: Ctx };
action "policy.read", "policy.write" in ["admin"]
  appliesTo { principal: [${principals}], resource: [Policy], context: Ctx };
action "audit.read" in ["admin"] appliesTo { principal: [${principals}], resource: [AuditStream], context: Ctx };
action "key.rotate", "resource.manage" in ["admin"] appliesTo { principal: [${principals}], resource: [ControlPlane], context: Ctx };
// Another identity's leases: reading, renewing and revoking them are three actions (one's own need none).
action "lease.read", "lease.renew", "lease.revoke" in ["admin"] appliesTo { principal: [${principals}], resource: [Lease, ControlPlane], context: Ctx };
// Reading every access request, grant and webhook delivery (humans already see requests and grants).
action "access.read" in ["admin"] appliesTo { principal: [${principals}], resource: [AccessRequest, ControlPlane], context: Ctx };
// Gateway sessions (issue #11): reading a recording, ending a live session (one's own need neither).
action "session.read", "session.terminate" in ["admin"] appliesTo { principal: [${principals}], resource: [Session, ControlPlane], context: Ctx };
// Governance (issue #12): access review campaigns, lifecycle (offboarding, rotation), evidence reports.
action "review.read", "review.manage", "lifecycle.read", "lifecycle.manage", "report.read" in ["admin"] appliesTo { principal: [${principals}], resource: [ControlPlane], context: Ctx };
// Deciding a review item: every human may ask (system:reviewers); the campaign lets only the item's reviewers decide.
action "review.decide" appliesTo { principal: [${principals}], resource: [ControlPlane], context: Ctx };

// AI agents (docs/agents.md), decided on the agent's Identity: setting its profile (sponsor,
// model, tools) is agent.manage; making an assignment (a delegating user for their own agent use,
// or an agent handing a narrower part of one to a sub-agent) is assignment.create and sees what
// is asked; reading and ending another's assignments are assignment.read / assignment.end.
type AssignmentRequest = {
  intent: String,
  tools: Set<String>,      // "server/tool" | "server/*"
  audiences: Set<String>,  // RFC 8707 resource indicators
  ttlSeconds: Long,
  depth: Long,             // 1: the agent acts for the delegator; 2: a sub-agent; …
  delegator: String,
  sponsor: String,
};
type AssignmentCtx = {${CTX_FIELDS}
  assignment?: AssignmentRequest,
};
action "agent.manage", "assignment.read", "assignment.end" in ["admin"] appliesTo { principal: [${principals}], resource: [Identity], context: Ctx };
action "assignment.create" appliesTo { principal: [${principals}], resource: [Identity], context: AssignmentCtx };
`;

export const BUILTIN_SCHEMA = builtinSchema();

/**
 * Policies that are part of every active set. The boundary guard is a forbid, so no permit can
 * override it; it is written with `has` so a missing attribute makes it apply (fail closed)
 * rather than error (a policy that errors is skipped).
 */
export const SYSTEM_POLICIES: { id: string; text: string }[] = [
  {
    id: 'system:boundary-guard',
    text: `@id("system:boundary-guard")
forbid (principal, action, resource)
unless {
  resource is ControlPlane || resource is Policy || resource is AuditStream ||
  resource is Lease || resource is AccessRequest || resource is Identity || resource is Session ||
  context.bridge ||
  (principal has boundary && resource has boundary && principal.boundary == resource.boundary)
};`,
  },
  {
    // The AI platform is a trust boundary apart from the application and its tenants
    // (docs/agents.md "Boundaries"): a bridge out of ai-platform carries its agents, never its
    // people — an operator cannot reach customer data through a tool, even one an agent may
    // call; a bridge into it never hands an agent connector's secret to anyone but an agent; and
    // an agent reaches another boundary's tools, MCP resources and prompts only while acting for someone (a delegation).
    id: 'system:ai-platform-guard',
    text: `@id("system:ai-platform-guard")
forbid (principal, action, resource)
when {
  context.bridge && principal has boundary && resource has boundary &&
  ((principal is User && principal.boundary == "ai-platform") ||
   (resource is Secret && resource.boundary == "ai-platform" && !(principal is Agent)) ||
   (principal is Agent && (resource is Tool || resource is McpResource || resource is Prompt) && !(context has delegation && context.delegation.depth > 0)))
};`,
  },
  {
    // Minting an API key for an agent, binding it to a trust or rewriting its profile is taking
    // it over (and its connectors' secrets with it): never from another boundary than the
    // agent's, whatever policy says, but by a Portcullis administrator.
    id: 'system:agent-takeover-guard',
    text: `@id("system:agent-takeover-guard")
forbid (principal, action in [Action::"apikey.manage", Action::"identity.bind", Action::"agent.manage"], resource is Identity)
when { resource.kind == "agent" && !(principal has boundary && principal.boundary == resource.boundary) }
unless { principal in Role::"portcullis-admin" };`,
  },
  {
    id: 'system:admins',
    text: `@id("system:admins")
permit (principal in Role::"portcullis-admin", action in Action::"admin", resource);`,
  },
  {
    id: 'system:reviewers',
    text: `@id("system:reviewers")
permit (principal is User, action == Action::"review.decide", resource == ControlPlane::"reviews");`,
  },
];
