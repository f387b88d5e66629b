// The PostgreSQL gateway (placeholder until the wire protocol lands in the next commit).
import { Unavailable } from '../../common/errors.ts';
import type { Gateway, GatewayDeps } from '../plugin.ts';
import type { PostgresGatewayConfig } from './config.ts';

export class PostgresGateway implements Gateway {
  readonly name: string;
  readonly kind = 'postgres';
  constructor(config: PostgresGatewayConfig, _deps: GatewayDeps) {
    this.name = config.name;
  }
  start(): Promise<{ host: string; port: number }> {
    return Promise.reject(new Unavailable('the postgres gateway is not built yet'));
  }
  async stop(): Promise<void> {}
}
