// The whole store as the composition root sees it: one set of repositories per domain (each
// typed by the domain's own ports file) and the unit of work they share.
import type { ChangeFeed, Leadership, UnitOfWork } from './ports.ts';
import type { IdentityStore } from '../identity/ports.ts';
import type { InventoryStore } from '../inventory/ports.ts';
import type { KeyStore } from '../crypto/ports.ts';
import type { BootstrapStore } from '../broker/ports.ts';
import type { PolicyStoreRepository } from '../policy/ports.ts';
import type { CredentialStore } from '../credentials/ports.ts';
import type { AccessStore } from '../access/ports.ts';
import type { AuditStore } from '../audit/ports.ts';
import type { AgentStore } from '../agents/ports.ts';

export interface Store extends UnitOfWork {
  /** `sqlite` (embedded, default) or `postgres` (shared by replicas). */
  readonly kind: 'sqlite' | 'postgres';
  readonly identity: IdentityStore;
  readonly inventory: InventoryStore;
  readonly keys: KeyStore;
  readonly bootstrap: BootstrapStore;
  readonly policy: PolicyStoreRepository;
  readonly credentials: CredentialStore;
  readonly access: AccessStore;
  readonly audit: AuditStore;
  /** Agent profiles and assignments (docs/agents.md). */
  readonly agents: AgentStore;
  /** Notices to and from the other replicas sharing the store. */
  readonly changes: ChangeFeed;
  /** Whether this replica runs the cluster's jobs (started by the broker once it is open). */
  readonly leader: Leadership & { start(): void };
  /** False once closed (readiness). */
  readonly isOpen: boolean;
  /** Stops the store's writers, then closes its connections (idempotent). */
  close(): Promise<void>;
}
