// Express middleware: `app.get(path, authorize(pdp, (req) => question), handler)`. The answer is
// on `res.locals.portcullis`; a deny is a 403, an unavailable PDP a 503 (fail closed).
import type { NextFunction, Request, Response } from 'express';
import type { Pdp } from './pdp.ts';
import { decide } from './guard.ts';
import type { Ask } from './guard.ts';

export function authorize(pdp: Pdp, ask: Ask<Request>): (req: Request, res: Response, next: NextFunction) => void {
  return (req, res, next) => {
    decide(pdp, ask, req).then(
      (out) => {
        if ('refusal' in out) {
          res.status(out.refusal.status).type('application/problem+json').send(JSON.stringify(out.refusal.body));
          return;
        }
        res.locals.portcullis = out.answer;
        next();
      },
      (err: unknown) => next(err),
    );
  };
}
