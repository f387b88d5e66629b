// Errors both decision engines throw, each with the stable code the API reports (the same codes
// from either engine, so which one runs is invisible to callers).
import { PortcullisError } from '../../common/errors.ts';

/** A policy the engine cannot load: a parse or validation error, a duplicate id, an unsupported scope. */
export class PolicyInvalid extends PortcullisError {
  constructor(message: string) {
    super('policy_invalid', 400, message);
  }
}

/** An entity the engine cannot take (a bad attribute value, a hierarchy cycle). */
export class EntityInvalid extends PortcullisError {
  constructor(message: string) {
    super('entity_invalid', 400, message);
  }
}

/** A decision asked for before any policy set is loaded: fail closed. */
export class EngineNotReady extends PortcullisError {
  constructor() {
    super('engine_not_ready', 503, 'no policy set loaded');
  }
}

/** A request the engine cannot evaluate (a malformed context, an entity cycle). */
export class DecisionFailed extends PortcullisError {
  constructor(message: string) {
    super('decision_failed', 400, message);
  }
}
