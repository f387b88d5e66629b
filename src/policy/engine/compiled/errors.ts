/** An error raised while evaluating a policy: the policy is skipped and reported. */
export class CedarEvalError extends Error {}
