// Chooses the decision engine named in the config.
import type { DecisionEngine, EngineKind } from './types.ts';
import { WasmEngine } from './wasm.ts';

let compiled: (() => DecisionEngine) | undefined;

/** Registered by the compiled engine's module when it is loaded. */
export function registerCompiledEngine(factory: () => DecisionEngine): void {
  compiled = factory;
}

export function createEngine(kind: EngineKind): DecisionEngine {
  if (kind === 'compiled') {
    if (!compiled) throw new Error('engine "compiled" is not available in this build; use engine: wasm');
    return compiled();
  }
  return new WasmEngine();
}
