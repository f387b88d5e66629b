// What one gateway kind is (like an issuer or trust kind): its kind name, the target kinds it
// fronts, its config schema and a factory. registry.ts lists the kinds; nothing else names them.
// A gateway only talks to the broker through the GatewayHost it is given (host.ts).
import { integer, text, z } from '../common/validation.ts';
import type { GatewayHost } from './host.ts';

export const GATEWAY_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** What every `gateways[i]` entry has, whatever its kind. */
export interface GatewayBase {
  name: string;
  kind: string;
  /** Where it listens for clients (port 0: any free port, for tests). */
  listen: { host: string; port: number };
  /** The credential target (`targets[].name`) it opens upstream connections with. */
  target: string;
}

/** What the broker gives a gateway it builds. */
export interface GatewayDeps {
  host: GatewayHost;
  /** Relative paths in the entry (certificates, keys) resolve against this folder (the config file's). */
  baseDir: string;
  log: (msg: string) => void;
}

/** A running gateway: the broker starts and stops it with the server. */
export interface Gateway {
  readonly name: string;
  readonly kind: string;
  /** The public host key clients pin (`ssh-ed25519 AAAA…`), for kinds that have one (ssh). */
  readonly hostKey?: string;
  /** Listens; resolves with the address actually bound (port 0 becomes the port chosen). */
  start(): Promise<{ host: string; port: number }>;
  /** Stops listening and ends every live session (each with a clear error to its client). */
  stop(): Promise<void>;
}

export interface GatewayPlugin<T extends GatewayBase = GatewayBase> {
  /** `kind:` of a gateway in portcullis.yaml. */
  readonly kind: T['kind'];
  /** Target kinds (`targets[].kind`) this gateway can front. */
  readonly targetKinds: readonly string[];
  /** One `gateways[i]` entry as written → the typed entry (zod; errors name the field). */
  readonly config: z.ZodType<T>;
  /**
   * Checks the entry against the target it fronts (already known to be of a fronted kind) and
   * fills what defaults from it; throws ConfigError naming the field (`at` is the entry's path).
   */
  resolve?(config: T, target: { name: string; kind: string } & Record<string, unknown>, at: string): T;
  /** Builds one configured gateway (does not listen yet). */
  create(config: T, deps: GatewayDeps): Gateway;
}

/** `name`, `kind`, `listen` and `target` of a gateway, in its `gateways[i]` mapping. */
export function gatewayFields<K extends string>(kind: K) {
  return {
    name: text({ pattern: GATEWAY_NAME_RE, hint: 'expected lowercase letters, digits, . _ -' }),
    kind: z.literal(kind),
    listen: z.strictObject({ host: text({ max: 255 }).default('127.0.0.1'), port: integer(0, 65535) }),
    target: text({ max: 128 }),
  };
}
