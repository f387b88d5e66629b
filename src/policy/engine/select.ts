// Chooses the decision engine named in the config (`engine: wasm | compiled`).
import type { DecisionEngine, EngineKind } from './types.ts';
import { WasmEngine } from './wasm.ts';
import { CompiledEngine } from './compiled/index.ts';

export function createEngine(kind: EngineKind): DecisionEngine {
  return kind === 'compiled' ? new CompiledEngine() : new WasmEngine();
}
