// The `ssh` gateway kind: OpenSSH clients log in with a Portcullis user certificate (or a session
// token / API key as password); each channel is decided, recorded, and run upstream via OpenSSH.
import { lazyModule } from '../../common/lazy-module.ts';
import type { GatewayPlugin } from '../plugin.ts';
import { sshGatewayConfig } from './config.ts';
import type { SshGatewayConfig } from './config.ts';

const impl = lazyModule<typeof import('./gateway.ts')>(import.meta.url, './gateway.ts');

export const sshGateway: GatewayPlugin<SshGatewayConfig> = {
  kind: 'ssh',
  targetKinds: ['ssh'],
  config: sshGatewayConfig,
  create: (config, deps) => new (impl().SshGateway)(config, deps),
};
