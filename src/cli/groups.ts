// Which module registers which top-level command (main.ts imports only the one it needs).
import type { Command } from 'commander';

/**
 * The command groups, in `--help` order, with the top-level commands each registers. Only the
 * group of the command being run is imported (test/cli/main.test.ts checks this table against
 * what each group registers); `--help` and unknown commands load them all.
 */
export const GROUPS: { names: string[]; load: () => Promise<{ register(program: Command): void }> }[] = [
  { names: ['server', 'dev'], load: () => import('./commands/server.ts') },
  { names: ['login', 'logout'], load: () => import('./commands/login.ts') },
  { names: ['authorize'], load: () => import('./commands/authorize.ts') },
  { names: ['identities'], load: () => import('./commands/identities.ts') },
  { names: ['findings'], load: () => import('./commands/findings.ts') },
  { names: ['reviews', 'lifecycle', 'report'], load: () => import('./commands/reviews.ts') },
  { names: ['apikeys'], load: () => import('./commands/apikeys.ts') },
  { names: ['policies'], load: () => import('./commands/policies.ts') },
  { names: ['audit'], load: () => import('./commands/audit.ts') },
  { names: ['creds', 'leases', 'revoke'], load: () => import('./commands/credentials.ts') },
  { names: ['ssh'], load: () => import('./commands/ssh.ts') },
  { names: ['request', 'requests', 'grants', 'break-glass', 'webhooks'], load: () => import('./commands/access.ts') },
  { names: ['access'], load: () => import('./commands/governance.ts') },
  { names: ['keys', 'sessions'], load: () => import('./commands/keys.ts') },
  { names: ['migrate', 'store'], load: () => import('./commands/store.ts') },
  { names: ['completion'], load: () => import('./commands/completion.ts') },
  { names: ['db'], load: () => import('./commands/db.ts') },
  { names: ['agents'], load: () => import('./commands/agents.ts') },
  { names: ['mcp'], load: () => import('./commands/mcp.ts') },
];

/** The groups to load for these arguments: the one naming the command, or all. */
export function groupsFor(args: readonly string[]): typeof GROUPS {
  const first = args.find((a) => !a.startsWith('-'));
  const group = first === undefined ? undefined : GROUPS.find((g) => g.names.includes(first));
  return group ? [group] : GROUPS;
}

