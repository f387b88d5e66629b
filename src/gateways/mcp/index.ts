// The `mcp` gateway kind: a Streamable-HTTP MCP proxy that is an OAuth 2.1 protected resource;
// every tool call, resource read and prompt fetch is decided with Cedar, may be held for a human,
// and is recorded (docs/agents.md "MCP gateway").
import { lazyModule } from '../../common/lazy-module.ts';
import { ConfigError } from '../../common/validation.ts';
import type { GatewayPlugin } from '../plugin.ts';
import { mcpGatewayConfig, type McpGatewayConfig } from './config.ts';

const impl = lazyModule<typeof import('./gateway.ts')>(import.meta.url, './gateway.ts');

export const mcpGateway: GatewayPlugin<McpGatewayConfig> = {
  kind: 'mcp',
  targetKinds: ['api'],
  config: mcpGatewayConfig,
  // The resource identifier is the api target's audience: the exchange issues tokens for it.
  resolve: (g, target, at) => {
    const audience = target.audience;
    if (typeof audience !== 'string' || audience === '') throw new ConfigError(`${at}.target`, `target ${target.name} has no audience`);
    return { ...g, resource: audience };
  },
  create: (config, deps) => new (impl().McpGateway)(config, deps),
};
