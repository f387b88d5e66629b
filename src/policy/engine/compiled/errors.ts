// The compiled engine's internal evaluation error; its edge turns it into a named engine error (../errors.ts).

/** An error raised while evaluating a policy: the policy is skipped and reported. */
export class CedarEvalError extends Error {}
