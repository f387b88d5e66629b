// @portcullis/middleware: ask Portcullis (AuthZEN 1.0) from an application, with Express and
// Fastify adapters in `./express` and `./fastify`.
export { Pdp, PdpUnavailable } from './pdp.ts';
export type { Answer, Evaluation, PdpOptions } from './pdp.ts';
export type { Ask, Refusal } from './guard.ts';
