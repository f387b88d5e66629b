// No probing by id: to a caller who may not read a kind of resource, an id that does not exist
// and an id it may not touch answer the same 404 (same body: the message names only what the
// caller sent). A caller who may read gets the precise answer (403, 409, …). The admin APIs
// wrap every by-id operation in it; the transports only serialize what comes out.
import { NotFound, PortcullisError } from '../common/errors.ts';

const AFTER_POLICY = new Set(['self_escalation', 'self_approval']);

/**
 * Runs `fn` for the resource `what` `id`. Not found → one 404 whatever the domain said; refused
 * (403) or in a state that refuses the operation (409) → the same 404 unless `canRead` says the
 * caller may see the resource.
 */
export async function opaqueId<T>(what: string, id: string, canRead: () => Promise<boolean> | boolean, fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (!(err instanceof PortcullisError)) throw err;
    if (err.code === 'not_found') throw new NotFound(`${what} ${id}`);
    // Refusing an identity its own escalation, or a requester its own approval, reveals nothing a
    // 404 would hide (the caller is the subject). Separation of duties is answered like any other
    // refusal: precise to whoever may read the request, 404 to anyone else.
    if (err.status === 403 && AFTER_POLICY.has(err.code)) throw err;
    if (err.status === 403 || err.status === 409) {
      let readable: boolean;
      try {
        readable = await canRead();
      } catch {
        readable = false;
      }
      if (!readable) throw new NotFound(`${what} ${id}`);
    }
    throw err;
  }
}
