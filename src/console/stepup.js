// Step-up in the page: an action answered `401 step_up_required` (policy @stepUp / @maxAuthAge)
// sends the person through the SSO sign-in again with what it asked for (MFA, max_age) and back
// to a page location that retries the action (e.g. #/governance/decide/<item>/keep). The retry
// runs only if this tab started that step-up (a link or a lured sign-in cannot make the page act).

/** What a step_up_required problem asks for ({ mfa, max_age }), or undefined for any other error. */
export function stepUpNeeded(e) {
  return e?.status === 401 && e.problem?.code === 'step_up_required' ? { mfa: e.problem.required?.mfa === true, ...(Number.isInteger(e.problem.required?.max_age) && { max_age: e.problem.required.max_age }) } : undefined;
}

/** Hands a step-up to the shell (`onStepUp(required, retryHash)`); true when it was one. */
export function stepUpFrom(e, onStepUp, retryHash = location.hash) {
  const required = stepUpNeeded(e);
  if (!required || !onStepUp) return false;
  onStepUp(required, retryHash);
  return true;
}

/** The console's sign-in with the step-up asked for, coming back to `retryHash`. */
export function stepUpLogin(required, retryHash) {
  const q = new URLSearchParams();
  if (required.mfa) q.set('mfa', 'true');
  if (required.max_age !== undefined) q.set('max_age', String(required.max_age));
  if (retryHash) q.set('return', retryHash);
  return `/console/login?${q}`;
}

export function describeStepUp(required) {
  const what = [required.mfa ? 'multi-factor authentication' : '', required.max_age !== undefined ? `a sign-in within the last ${required.max_age} s` : ''].filter(Boolean).join(' and ');
  return `This action needs ${what || 'a fresh sign-in'}.`;
}

const RETRY_KEY = 'portcullis.retry';

/** Called as the person leaves for the step-up sign-in: this tab expects to come back to `retryHash`. */
export function expectRetry(retryHash) {
  try {
    window.sessionStorage.setItem(RETRY_KEY, retryHash);
  } catch {
    // No storage: the retry will not run; the person decides again.
  }
}

/** True (once) when this tab started a step-up that comes back to `hash`; anything else is a plain link. */
export function takeRetry(hash) {
  try {
    const expected = window.sessionStorage.getItem(RETRY_KEY);
    window.sessionStorage.removeItem(RETRY_KEY);
    return expected !== null && expected === hash;
  } catch {
    return false;
  }
}
