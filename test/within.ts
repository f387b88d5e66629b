// A bound on a wait in a test: `p` as it settles, or a failure naming what did not happen once `ms`
// have passed — so a hang fails the test at its own bound, not at the runner's timeout.

/** Resolves as `p` does, or rejects with "`what` … within `ms` ms" once `ms` have passed. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} (not within ${ms} ms)`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
