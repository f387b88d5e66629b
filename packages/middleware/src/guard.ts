// What the Express and Fastify adapters share: map a request to an AuthZEN question, ask, and
// turn the answer into "go on" or a problem+json refusal (403 denied, 503 Portcullis unavailable).
import type { Answer, Evaluation, Pdp } from './pdp.ts';
import { PdpUnavailable } from './pdp.ts';

/** Maps a request to its question; `undefined` means no subject is known (answered 401). */
export type Ask<Req> = (req: Req) => Evaluation | undefined | Promise<Evaluation | undefined>;

export interface Refusal {
  status: 401 | 403 | 503;
  body: { type: string; title: string; status: number; detail: string };
}

/** The outcome of asking for one request: the answer to attach, or the refusal to send. */
export async function decide<Req>(pdp: Pdp, ask: Ask<Req>, req: Req): Promise<{ answer: Answer } | { refusal: Refusal }> {
  const question = await ask(req);
  if (!question) return { refusal: refusal(401, 'Unauthorized', 'no authenticated subject for this request') };
  try {
    const answer = await pdp.evaluate(question);
    if (answer.decision) return { answer };
    return { refusal: refusal(403, 'Forbidden', `${question.subject.type}:${question.subject.id} may not ${question.action.name} on ${question.resource.type}:${question.resource.id}`) };
  } catch (err) {
    if (err instanceof PdpUnavailable) return { refusal: refusal(503, 'Service Unavailable', 'the authorization service could not answer; try again') };
    throw err;
  }
}

function refusal(status: Refusal['status'], title: string, detail: string): Refusal {
  return { status, body: { type: 'about:blank', title, status, detail } };
}
