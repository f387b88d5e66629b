// The `postgres` gateway kind: PostgreSQL clients connect to it with a Portcullis proof as their
// password; every statement is parsed, decided and recorded before its result reaches them.
import { lazyModule } from '../../common/lazy-module.ts';
import { ConfigError } from '../../common/validation.ts';
import type { GatewayPlugin } from '../plugin.ts';
import { postgresGatewayConfig, type PostgresGatewayConfig } from './config.ts';

const impl = lazyModule<typeof import('./gateway.ts')>(import.meta.url, './gateway.ts');

export const postgresGateway: GatewayPlugin<PostgresGatewayConfig> = {
  kind: 'postgres',
  targetKinds: ['postgres'],
  config: postgresGatewayConfig,
  // The upstream lease's permission set: one of the target's (its only one when not named).
  resolve: (g, target, at) => {
    const sets = Object.keys((target.permissions ?? {}) as Record<string, unknown>);
    if (g.permission === undefined) {
      if (sets.length !== 1) throw new ConfigError(`${at}.permission`, `is required: target ${target.name} has permission sets ${sets.join(', ')}`);
      return { ...g, permission: sets[0]! };
    }
    if (!sets.includes(g.permission)) throw new ConfigError(`${at}.permission`, `target ${target.name} has no permission set "${g.permission}" (it has ${sets.join(', ')})`);
    return g;
  },
  create: (config, deps) => new (impl().PostgresGateway)(config, deps),
};
