// The `postgres` gateway kind: PostgreSQL clients connect to it with a Portcullis proof as their
// password; every statement is parsed, decided and recorded before its result reaches them.
import { lazyModule } from '../../common/lazy-module.ts';
import type { GatewayPlugin } from '../plugin.ts';
import { postgresGatewayConfig, type PostgresGatewayConfig } from './config.ts';

const impl = lazyModule<typeof import('./gateway.ts')>(import.meta.url, './gateway.ts');

export const postgresGateway: GatewayPlugin<PostgresGatewayConfig> = {
  kind: 'postgres',
  targetKinds: ['postgres'],
  config: postgresGatewayConfig,
  create: (config, deps) => new (impl().PostgresGateway)(config, deps),
};
