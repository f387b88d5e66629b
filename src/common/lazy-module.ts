// Plug-in registries list light descriptors; each descriptor loads its implementation module on
// first use, synchronously, so that reading a registry (config loader, CLI, Cedar schema) does not
// load pg, jose or the X.509 stack.
import { createRequire } from 'node:module';

/** `specifier` (relative to `from`, an import.meta.url), loaded on the first call and kept. */
export function lazyModule<M>(from: string, specifier: string): () => M {
  let m: M | undefined;
  return () => (m ??= createRequire(from)(specifier) as M);
}
