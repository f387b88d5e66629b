// Human sign-in through the `oidc-human` trusts: code + PKCE in a browser, or the device flow.
// Completing either goes through the same login path as every other proof.
import { InvalidInput, NotFound } from '../common/errors.ts';
import type { VerifiedProof } from '../identity/types.ts';
import type { DevicePoll, HumanLogin, HumanOidcTrust, StartedDeviceLogin, StartedLogin, StepUpAsk } from '../identity/trusts/oidc-human/oidc-human.ts';
import type { EntityUid } from '../policy/engine/types.ts';
import type { LoginResult } from './types.ts';
import type { Authentication } from './authentication.ts';

/** Thrown inside a device poll that is still pending: not a login attempt, so not audited. */
const PENDING = Symbol('pending');

function human(l: HumanLogin): { proof: VerifiedProof; parents: EntityUid[] } {
  return { proof: l.proof, parents: l.parents };
}

export class HumanSignIn {
  readonly #trusts: ReadonlyMap<string, HumanOidcTrust>;
  readonly #login: Pick<Authentication, 'establish'>;

  constructor(trusts: ReadonlyMap<string, HumanOidcTrust>, login: Pick<Authentication, 'establish'>) {
    this.#trusts = trusts;
    this.#login = login;
  }

  #trust(name: string | undefined): HumanOidcTrust {
    if (name === undefined) {
      if (this.#trusts.size === 1) return [...this.#trusts.values()][0]!;
      if (this.#trusts.size === 0) throw new NotFound('human sign-in (no oidc-human trust is configured)');
      throw new InvalidInput(`several oidc-human trusts are configured; name one (${[...this.#trusts.keys()].join(', ')})`, 'trust');
    }
    const t = this.#trusts.get(name);
    if (!t) throw new NotFound(`oidc-human trust ${name}`);
    return t;
  }

  /** Starts a code + PKCE login; the caller opens `url` and brings back `state` and `code`. */
  async start(o: { trust?: string; redirectUri: string; stepUp?: StepUpAsk; loginHint?: string }): Promise<StartedLogin & { trust: string }> {
    const t = this.#trust(o.trust);
    const started = await t.startLogin({ redirectUri: o.redirectUri, ...(o.stepUp && { stepUp: o.stepUp }), ...(o.loginHint !== undefined && { loginHint: o.loginHint }) });
    return { ...started, trust: t.name };
  }

  complete(o: { trust?: string; state: string; code?: string; iss?: string; error?: string }, sourceIp: string): Promise<LoginResult> {
    const t = this.#trust(o.trust);
    const { trust: _t, ...params } = o;
    return this.#login.establish(`oidc-human:${t.name}`, async () => human(await t.completeLogin(params)), sourceIp);
  }

  async startDevice(o: { trust?: string; stepUp?: StepUpAsk }): Promise<StartedDeviceLogin & { trust: string }> {
    const t = this.#trust(o.trust);
    return { ...(await t.startDeviceLogin(o.stepUp ? { stepUp: o.stepUp } : {})), trust: t.name };
  }

  /** One poll; `pending` until the user has approved on the provider's page. */
  async pollDevice(o: { trust?: string; handle: string }, sourceIp: string): Promise<{ status: 'pending'; interval: number } | ({ status: 'complete' } & LoginResult)> {
    const t = this.#trust(o.trust);
    let poll: DevicePoll | undefined;
    const result = await this.#login.establish(`oidc-human:${t.name}`, async () => {
      poll = await t.pollDeviceLogin(o.handle);
      // Pending is not a login attempt: nothing to admit or audit yet.
      if (poll.status === 'pending') throw PENDING;
      return human(poll.login);
    }, sourceIp).catch((err) => {
      if (err === PENDING) return undefined;
      throw err;
    });
    if (!result) return { status: 'pending', interval: poll!.status === 'pending' ? poll!.interval : 5 };
    return { status: 'complete', ...result };
  }
}
