// Lifecycle on a cadence: rotation due dates per credential kind (rotating the broker's own signing
// keys where configured), owner offboarding (each identity the owner held is flagged, then
// reassigned to a successor or suspended per policy) and idle identities offboarded after a grace
// warning. The periodic part runs on the leader only; every action is an `admin` audit event.
import type { Clock } from '../../common/clock.ts';
import { InvalidInput, NotFound } from '../../common/errors.ts';
import type { AuditSink } from '../../audit/types.ts';
import type { LifecycleConfig } from './config.ts';
import type { FlagRepository, IdentityFlag } from './ports.ts';

export interface LifecycleIdentity {
  id: string;
  kind: string;
  owner: string | null;
  status: string;
  created_at: string;
  last_authenticated_at: string | null;
}

export interface LifecycleEffects {
  /** Suspends or offboards an identity (its sessions, leases, grants — and for offboarding its API keys — end). */
  retire(id: string, status: 'suspended' | 'offboarded', by: string, reason: string): Promise<void>;
  /** Makes `owner` the identity's owner. */
  reassign(id: string, owner: string, by: string, reason: string): Promise<void>;
  /** Rotates one of the broker's signing keys; returns the new key id. */
  rotateKey(purpose: 'session' | 'token' | 'audit'): Promise<string>;
}

/** What rotation due dates are computed from. */
export interface RotationFacts {
  apikeys: { id: string; identity_id: string; status: string; created_at: string; rotate_by: string }[];
  signingKeys: { kid: string; purpose: 'session' | 'token' | 'audit'; status: string; createdAt: number }[];
  spiffe: { trustDomain: string; generation: number; notBefore: number; notAfter: number }[];
  sshCas: { name: string; publicKey: string }[];
}

export interface RotationItem {
  kind: 'apikey' | 'signing_key' | 'ssh_ca' | 'spiffe_ca';
  id: string;
  /** Whose it is: an identity for API keys, `portcullis` for the broker's own. */
  holder: string;
  created_at: string | null;
  due_at: string | null;
  overdue: boolean;
  /** How it is rotated: `portcullis apikeys rotate`, `auto` (Portcullis does it), `manual`. */
  how: string;
}

export interface LifecycleOptions {
  flags: FlagRepository;
  clock: Clock;
  audit: AuditSink;
  notifier: { notify(type: string, data: Record<string, unknown>): void };
  config: LifecycleConfig;
  identities: () => readonly LifecycleIdentity[];
  effects: LifecycleEffects;
  rotationFacts: () => Promise<RotationFacts>;
}

export interface OffboardResult {
  owner: string;
  successor: string | null;
  identities: { id: string; action: 'reassigned' | 'suspended' | 'flagged'; to?: string }[];
}

const SYSTEM = 'system';
const iso = (ms: number) => new Date(ms).toISOString();

export class Lifecycle {
  readonly #o: LifecycleOptions;

  constructor(o: LifecycleOptions) {
    this.#o = o;
  }

  get config(): LifecycleConfig {
    return this.#o.config;
  }

  /** Rotation due dates: API keys at their `rotate_by`, the broker's keys and CAs by the configured periods. */
  async rotation(now = this.#o.clock.now()): Promise<RotationItem[]> {
    const f = await this.#o.rotationFacts();
    const r = this.#o.config.rotation;
    const out: RotationItem[] = [];
    for (const k of f.apikeys) {
      if (k.status !== 'active') continue;
      const due = r.apikey_ms !== undefined ? Math.min(Date.parse(k.rotate_by), Date.parse(k.created_at) + r.apikey_ms) : Date.parse(k.rotate_by);
      out.push({ kind: 'apikey', id: k.id, holder: k.identity_id, created_at: k.created_at, due_at: iso(due), overdue: due <= now, how: `portcullis apikeys rotate ${k.id}` });
    }
    for (const k of f.signingKeys) {
      if (k.status !== 'active') continue;
      const due = k.createdAt + r.signing_keys_ms;
      out.push({ kind: 'signing_key', id: k.kid, holder: `portcullis:${k.purpose}`, created_at: iso(k.createdAt), due_at: iso(due), overdue: due <= now, how: r.auto_rotate.includes(k.purpose) ? 'auto' : `portcullis keys rotate ${k.purpose}` });
    }
    for (const g of f.spiffe) {
      // Generations are renewed by Portcullis before they run out; the period bounds the root's age.
      const due = Math.min(g.notAfter, g.notBefore + r.spiffe_ca_ms);
      out.push({ kind: 'spiffe_ca', id: `${g.trustDomain}#${g.generation}`, holder: 'portcullis', created_at: iso(g.notBefore), due_at: iso(due), overdue: due <= now, how: 'auto (a new generation before the intermediate runs out)' });
    }
    for (const c of f.sshCas) {
      // The SSH CAs are sealed seeds with no age on record and no rotation code yet: reported, rotated by hand.
      out.push({ kind: 'ssh_ca', id: c.name, holder: 'portcullis', created_at: null, due_at: null, overdue: false, how: `manual (replace the ${c.name} secret; the period is ${Math.round(r.ssh_ca_ms / 86_400_000)}d)` });
    }
    return out.sort((a, b) => Number(b.overdue) - Number(a.overdue) || (a.due_at ?? '~').localeCompare(b.due_at ?? '~'));
  }

  /**
   * A human owner leaves: the owner is offboarded (by the caller, beforehand), and each identity
   * it owned is flagged, then reassigned to `successor` (or the configured one) or suspended, per
   * `lifecycle.offboarding.owned`.
   */
  async offboardOwner(by: string, owner: string, o: { successor?: string; reason: string }): Promise<OffboardResult> {
    if (!owner.startsWith('user:')) throw new InvalidInput('owner must be a human (user:…); teams are not offboarded', 'owner');
    if (o.successor === owner) throw new InvalidInput('successor must be someone else than the owner leaving', 'successor');
    const known = this.#o.identities().find((i) => i.id === owner);
    if (!known && !this.#o.identities().some((i) => i.owner === owner)) throw new NotFound(`identity ${owner}`);
    if (o.successor !== undefined) {
      const s = this.#o.identities().find((i) => i.id === o.successor);
      if (!o.successor.startsWith('team:') && s?.status !== 'active') throw new InvalidInput(`successor ${o.successor} is not an active identity (name an active user or a team:…)`, 'successor');
    }
    const successor = o.successor ?? this.#o.config.offboarding.successor ?? null;
    if (known && known.status !== 'offboarded') await this.#o.effects.retire(owner, 'offboarded', by, o.reason);
    const result = await this.#handleOrphans(by, owner, successor, o.reason);
    await this.#o.audit.append({ stream: 'admin', type: 'lifecycle.owner_offboarded', actor: by, subject: owner, payload: { successor, policy: this.#o.config.offboarding.owned, reason: o.reason, identities: result.identities } });
    return result;
  }

  async #handleOrphans(by: string, owner: string, successor: string | null, reason: string): Promise<OffboardResult> {
    const now = this.#o.clock.now();
    const policy = this.#o.config.offboarding.owned;
    const out: OffboardResult = { owner, successor, identities: [] };
    for (const i of this.#o.identities()) {
      if (i.owner !== owner || i.id === owner || i.status === 'offboarded') continue;
      await this.#o.flags.raise({ identity_id: i.id, code: 'owner.offboarded', detail: { owner, successor }, at: now });
      if (policy === 'reassign' && successor !== null) {
        await this.#o.effects.reassign(i.id, successor, by, `owner ${owner} offboarded: ${reason}`);
        await this.#o.flags.clear(i.id, 'owner.offboarded', { at: now, resolution: `reassigned to ${successor}` });
        await this.#event(by, 'lifecycle.owner_reassigned', i.id, { from: owner, to: successor });
        out.identities.push({ id: i.id, action: 'reassigned', to: successor });
      } else if (policy !== 'flag' && i.status === 'active') {
        // `reassign` with nobody to reassign to suspends: an identity nobody answers for stops.
        await this.#o.effects.retire(i.id, 'suspended', by, `owner ${owner} offboarded and no successor: ${reason}`);
        await this.#o.flags.clear(i.id, 'owner.offboarded', { at: now, resolution: 'suspended' });
        await this.#event(by, 'lifecycle.orphan_suspended', i.id, { owner });
        out.identities.push({ id: i.id, action: 'suspended' });
      } else {
        this.#o.notifier.notify('identity.owner_offboarded', { identity: i.id, owner });
        out.identities.push({ id: i.id, action: 'flagged' });
      }
    }
    return out;
  }

  async flags(): Promise<IdentityFlag[]> {
    return this.#o.flags.open();
  }

  /**
   * The periodic job (leader only): identities whose owner was offboarded some other way are
   * handled as at offboarding; idle identities get a warning, then after the grace period (still
   * unused) are offboarded or suspended; signing keys listed in `auto_rotate` are rotated when due.
   */
  async sweep(now = this.#o.clock.now()): Promise<{ orphans: string[]; warned: string[]; retired: string[]; rotated: string[] }> {
    const all = this.#o.identities();
    const byId = new Map(all.map((i) => [i.id, i]));
    const orphans: string[] = [];
    // An identity is handled once per owner who left (its flag, open or resolved, names that owner).
    const handled = async (i: LifecycleIdentity) => (await this.#o.flags.of(i.id)).some((f) => f.code === 'owner.offboarded' && f.detail.owner === i.owner);
    const leftBy = new Set<string>();
    for (const i of all) if (i.owner !== null && byId.get(i.owner)?.status === 'offboarded' && i.status !== 'offboarded' && !(await handled(i))) leftBy.add(i.owner);
    for (const owner of leftBy) {
      const r = await this.#handleOrphans(SYSTEM, owner, this.#o.config.offboarding.successor ?? null, 'owner found offboarded');
      orphans.push(...r.identities.map((x) => x.id));
    }
    const { warned, retired } = await this.#stale(now);
    const rotated: string[] = [];
    for (const item of await this.rotation(now)) {
      if (item.kind !== 'signing_key' || !item.overdue || item.how !== 'auto') continue;
      const purpose = item.holder.slice('portcullis:'.length) as 'session' | 'token' | 'audit';
      const kid = await this.#o.effects.rotateKey(purpose);
      await this.#event(SYSTEM, 'key.rotated', undefined, { purpose, kid, previous: item.id, reason: 'rotation due (lifecycle.rotation.auto_rotate)' });
      rotated.push(kid);
    }
    return { orphans, warned, retired, rotated };
  }

  async #stale(now: number): Promise<{ warned: string[]; retired: string[] }> {
    const cfg = this.#o.config.stale;
    const warned: string[] = [];
    const retired: string[] = [];
    if (!cfg) return { warned, retired };
    const open = new Map((await this.#o.flags.open('stale.warning')).map((f) => [f.identity_id, f]));
    for (const i of this.#o.identities()) {
      if (i.kind === 'user' || i.status !== 'active') continue;
      const lastUse = Date.parse(i.last_authenticated_at ?? i.created_at);
      const flag = open.get(i.id);
      if (flag) {
        if (lastUse >= Date.parse(flag.raised_at)) {
          await this.#o.flags.clear(i.id, 'stale.warning', { at: now, resolution: 'used again' });
        } else if (now - Date.parse(flag.raised_at) >= cfg.grace_ms) {
          const status = cfg.action === 'offboard' ? 'offboarded' : 'suspended';
          await this.#o.effects.retire(i.id, status, SYSTEM, `unused since ${iso(lastUse)} (lifecycle.stale)`);
          await this.#o.flags.clear(i.id, 'stale.warning', { at: now, resolution: status });
          await this.#event(SYSTEM, 'lifecycle.stale_retired', i.id, { status, last_use: iso(lastUse), warned_at: flag.raised_at });
          retired.push(i.id);
        }
      } else if (now - lastUse >= cfg.idle_ms) {
        const at = iso(now + cfg.grace_ms);
        if (!(await this.#o.flags.raise({ identity_id: i.id, code: 'stale.warning', detail: { last_use: iso(lastUse), action: cfg.action, at }, at: now }))) continue;
        this.#o.notifier.notify('identity.stale_warning', { identity: i.id, owner: i.owner, last_use: iso(lastUse), action: cfg.action, at });
        await this.#event(SYSTEM, 'lifecycle.stale_warning', i.id, { last_use: iso(lastUse), action: cfg.action, at });
        warned.push(i.id);
      }
    }
    return { warned, retired };
  }

  async #event(actor: string, type: string, subject: string | undefined, payload: Record<string, unknown>): Promise<void> {
    await this.#o.audit.append({ stream: 'admin', type, actor, payload, ...(subject !== undefined && { subject }) });
  }
}
