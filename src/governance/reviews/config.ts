// The `reviews:` section of portcullis.yaml: default deadline, default action, reminder lead time
// and the schedules that open campaigns on a cadence (`every: 90d`).
import { ConfigError, duration, mapping, oneOf, section, text, texts, z } from '../../common/validation.ts';

const DAY = 86_400_000;

const SCOPE = mapping({
  boundary: text({ max: 64 }).optional(),
  environment: text({ max: 64 }).optional(),
  owner: text({ max: 256 }).optional(),
  kind: text({ max: 32 }).optional(),
});

export const REVIEW_SCHEDULE = mapping({
  name: text({ max: 64, pattern: /^[a-z0-9][a-z0-9-]*$/, hint: 'a short lowercase name like "quarterly-prod"' }),
  scope: SCOPE.optional(),
  every: duration({ min: DAY, range: 'must be at least 1d (e.g. 90d)' }),
  deadline: duration({ min: 60_000 }).optional(),
  default_action: oneOf(['suspend', 'revoke']).optional(),
  reviewers: texts({ max: 256 }).optional(),
});

export const REVIEWS_CONFIG = section({
  deadline: duration({ min: 60_000 }).optional(),
  // "keep" is not among the choices: an unanswered review takes access away.
  default_action: oneOf(['suspend', 'revoke']).optional(),
  remind_before: duration({ min: 0 }).optional(),
  schedules: z.array(REVIEW_SCHEDULE).optional(),
  sweep_interval: duration({ min: 1000 }).optional(),
});

export interface ReviewSchedule {
  name: string;
  scope: z.output<typeof SCOPE>;
  every_ms: number;
  deadline_ms?: number;
  default_action?: 'suspend' | 'revoke';
  reviewers: string[];
}

export interface ReviewsConfig {
  deadline_ms: number;
  default_action: 'suspend' | 'revoke';
  remind_before_ms: number;
  schedules: ReviewSchedule[];
  sweep_interval_ms: number;
}

export function resolveReviewsConfig(f: z.output<typeof REVIEWS_CONFIG> | undefined): ReviewsConfig {
  const schedules = (f?.schedules ?? []).map((s) => ({
    name: s.name,
    scope: s.scope ?? {},
    every_ms: s.every,
    ...(s.deadline !== undefined && { deadline_ms: s.deadline }),
    ...(s.default_action !== undefined && { default_action: s.default_action }),
    reviewers: s.reviewers ?? [],
  }));
  const names = new Set<string>();
  for (const [i, s] of schedules.entries()) {
    if (names.has(s.name)) throw new ConfigError(`reviews.schedules[${i}].name`, `"${s.name}" is used by another schedule; give each schedule its own name`);
    names.add(s.name);
  }
  return {
    deadline_ms: f?.deadline ?? 14 * DAY,
    default_action: f?.default_action ?? 'suspend',
    remind_before_ms: f?.remind_before ?? 3 * DAY,
    schedules,
    sweep_interval_ms: f?.sweep_interval ?? 60_000,
  };
}
