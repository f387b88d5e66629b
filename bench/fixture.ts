// A deployment-shaped policy set for the product-path benchmarks: N policies over 400 workloads
// and 100 databases in one boundary, valid against the built-in schema.
import type { PolicyFile } from '../src/policy/policy-set.ts';

export const N_WORKLOADS = 400;
export const N_DBS = 100;

export function policyFiles(n: number): PolicyFile[] {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const w = `workload:github/acme/svc-${i % N_WORKLOADS}`;
    const db = `db-${i % N_DBS}`;
    switch (i % 4) {
      case 0:
        lines.push(`@id("p${i}") permit (principal == Workload::"${w}", action in Action::"db.read", resource == Database::"${db}") when { context.purpose has reason };`);
        break;
      case 1:
        lines.push(`@id("p${i}") permit (principal == Workload::"${w}", action in Action::"db.write", resource == Database::"${db}") when { context.purpose has ticket && context.request.hour >= 6 && context.request.hour < 22 };`);
        break;
      case 2:
        lines.push(`@id("p${i}") forbid (principal == Workload::"${w}", action in Action::"db.write", resource == Database::"${db}") when { context.authn.method == "api-key" };`);
        break;
      default:
        lines.push(`@id("p${i}") permit (principal in Team::"team-${i % 40}", action == Action::"db.select", resource == Database::"${db}") when { resource.environment == principal.environment };`);
    }
  }
  return [{ name: `bench-${n}.cedar`, origin: 'config', text: lines.join('\n') }];
}

export function databases(): { type: string; id: string; boundary: string; environment: string; parents: never[]; attributes: Record<string, string> }[] {
  return Array.from({ length: N_DBS }, (_, i) => ({ type: 'Database', id: `db-${i}`, boundary: 'application', environment: 'prod', parents: [], attributes: {} }));
}

/** Deterministic request mix: principal i, database j, action and purpose varying. */
export function requestMix(count: number): { w: number; db: number; action: string; purpose: { reason?: string; ticket?: string } }[] {
  const out = [];
  let s = 42;
  const rnd = (n: number) => ((s = (s * 1103515245 + 12345) >>> 0) % n);
  const actions = ['db.select', 'db.insert', 'db.update', 'db.select'];
  for (let i = 0; i < count; i++) {
    const purpose = rnd(3) === 0 ? {} : rnd(2) === 0 ? { reason: 'report' } : { ticket: 'OPS-1' };
    out.push({ w: rnd(N_WORKLOADS), db: rnd(N_DBS), action: actions[rnd(4)]!, purpose });
  }
  return out;
}

export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
