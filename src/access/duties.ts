// Separation of duties by accountable humans (docs/access.md "Separation of duties"). The access
// domain is given `accountable(id)` (inventory: the humans accountable for an identity) and
// refuses a review that one person would be doing for themselves under another name.
import { SeparationOfDuties } from './errors.ts';

/** The humans accountable for an identity (sorted, no duplicates); `[]` when there is none. */
export type Accountable = (identityId: string) => readonly string[];

/**
 * Throws SeparationOfDuties unless `reviewer` resolves to exactly one accountable human who is not
 * accountable for `subject` (the requester or break-glass user) and who has not already approved
 * under another identity (`earlier`: the ids that approved before). `recorded` adds who was
 * accountable when the request was made and each earlier approval was cast: an owner changed in
 * between never lets one person count twice or review their own request.
 */
export function checkSeparation(
  accountable: Accountable,
  reviewer: string,
  subject: string,
  earlier: readonly string[] = [],
  recorded: { subjectHumans?: readonly string[]; earlierHumans?: readonly string[] } = {},
): string {
  const mine = accountable(reviewer);
  if (mine.length !== 1) {
    throw new SeparationOfDuties('no_accountable_human', `${reviewer} has no single accountable human (set its owner to a user) and cannot review`);
  }
  const human = mine[0]!;
  if (human === subject || accountable(subject).includes(human) || recorded.subjectHumans?.includes(human)) {
    throw new SeparationOfDuties('same_accountable_human', `${reviewer} answers to ${human}, who is accountable for ${subject}: nobody reviews their own access`);
  }
  if (earlier.some((e) => e === human || accountable(e).includes(human)) || recorded.earlierHumans?.includes(human)) {
    throw new SeparationOfDuties('already_approved_by_this_human', `${human} has already approved this request under another identity`);
  }
  return human;
}
