// `portcullis db …`: databases through the session gateways (the commands live with the sessions').
import type { Command } from 'commander';
import { registerDb } from './gateway-sessions.ts';

export function register(program: Command): void {
  registerDb(program);
}
