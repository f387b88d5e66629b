// The gateway kinds. Adding a kind is one folder beside these (see plugin.ts for what it exports)
// and one line in GATEWAYS; config loading and the broker read everything else from here.
import { ConfigError, validateConfig, z } from '../common/validation.ts';
import type { GatewayBase, GatewayPlugin } from './plugin.ts';
import { mcpGateway } from './mcp/index.ts';
import { postgresGateway } from './postgres/index.ts';
import { sshGateway } from './ssh/index.ts';

export const GATEWAYS = [postgresGateway, sshGateway, mcpGateway] as const;

export type { Gateway, GatewayBase, GatewayDeps, GatewayPlugin } from './plugin.ts';

/** A validated gateway entry of any registered kind. */
export type GatewayConfig = z.output<(typeof GATEWAYS)[number]['config']>;

const BY_KIND = new Map<string, GatewayPlugin<GatewayBase>>(GATEWAYS.map((g) => [g.kind, g as unknown as GatewayPlugin<GatewayBase>]));

/** The plug-in of a kind, or undefined. */
export function gatewayKind(kind: string): GatewayPlugin<GatewayBase> | undefined {
  return BY_KIND.get(kind);
}

/** `gateways[i]` as written: routed by `kind` to its plug-in's schema, so errors name that kind's fields only. */
export const GATEWAY_ENTRY = z.looseObject({ kind: z.enum(GATEWAYS.map((g) => g.kind) as [string, ...string[]], { error: `must be one of ${GATEWAYS.map((g) => g.kind).join(', ')}` }) });

/**
 * The `gateways:` section: each entry by its kind's schema; names unique; each fronts a
 * configured target of a kind it can front; no two listen on one address.
 */
export function loadGateways(entries: readonly Record<string, unknown>[], targets: readonly ({ name: string; kind: string } & object)[]): GatewayBase[] {
  const names = new Set<string>();
  const addresses = new Set<string>();
  return entries.map((raw, i) => {
    const at = `gateways[${i}]`;
    const plugin = BY_KIND.get(String(raw.kind))!;
    let g = validateConfig(plugin.config, raw, at);
    if (names.has(g.name)) throw new ConfigError(`${at}.name`, `duplicate gateway name "${g.name}"`);
    names.add(g.name);
    const t = targets.find((x) => x.name === g.target);
    if (!t) throw new ConfigError(`${at}.target`, `no target named "${g.target}" (known: ${targets.map((x) => x.name).join(', ') || 'none'})`);
    if (!plugin.targetKinds.includes(t.kind)) throw new ConfigError(`${at}.target`, `a ${plugin.kind} gateway fronts ${plugin.targetKinds.join(' or ')} targets; ${g.target} is a ${t.kind} target`);
    if (plugin.resolve) g = plugin.resolve(g, t as { name: string; kind: string } & Record<string, unknown>, at);
    const addr = `${g.listen.host}:${g.listen.port}`;
    if (g.listen.port !== 0 && addresses.has(addr)) throw new ConfigError(`${at}.listen`, `another gateway already listens on ${addr}`);
    addresses.add(addr);
    return g;
  });
}
