// The upstream connection of one gateway session: node-postgres opens it (TCP, TLS when the
// server asks, SCRAM/MD5/cleartext with the lease's password), then hands over its socket; the
// gateway speaks the wire protocol on it from the first ReadyForQuery on. The password never
// leaves this file except to pg.
import type { Socket } from 'node:net';
import pg from 'pg';

export interface UpstreamTarget {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
}

export interface Upstream {
  socket: Socket;
  /** The server's ParameterStatus values at connection (server_version, client_encoding, …). */
  parameters: Map<string, string>;
  /** The upstream's own cancel key: used to forward a client's cancel, never shown to it. */
  pid: number;
  key: number;
  /** Closes the connection (Terminate, then the socket). */
  close(): void;
}

/**
 * Connects as the lease's role with `search_path` pinned (startup option, so `RESET ALL` returns
 * to it). Rejects with an error whose message carries no secret.
 */
export async function connectUpstream(t: UpstreamTarget, o: { searchPath: readonly string[]; applicationName: string; timeoutMs: number }): Promise<Upstream> {
  const path = o.searchPath.map((s) => `"${s.replace(/"/g, '""')}"`).join(',');
  const client = new pg.Client({
    host: t.host,
    port: t.port,
    database: t.database,
    user: t.user,
    password: t.password,
    application_name: o.applicationName,
    connectionTimeoutMillis: o.timeoutMs,
    keepAlive: true,
    // `\ ` escapes spaces inside an -c value; the schema names are identifiers (config-validated).
    options: `-c search_path=${path.replace(/ /g, '\\ ')}`,
  });
  const parameters = new Map<string, string>();
  const con = (client as unknown as { connection: NodeJS.EventEmitter & { stream: Socket } }).connection;
  con.on('parameterStatus', (m: { parameterName: string; parameterValue: string }) => parameters.set(m.parameterName, m.parameterValue));
  client.on('error', () => {});
  // The cause is not kept: only its redacted message and code travel on.
  const refused = await client.connect().then(
    () => undefined,
    (err: unknown) => {
      client.end().catch(() => {});
      const code = (err as { code?: string }).code;
      return `the upstream server refused the connection${code ? ` (${code})` : ''}: ${redact((err as Error).message, t.password)}`;
    },
  );
  if (refused !== undefined) throw new Error(refused);
  const socket = con.stream;
  // From here on the gateway owns the socket: pg's parser and handlers let go of it.
  socket.removeAllListeners('data');
  socket.removeAllListeners('end');
  socket.removeAllListeners('close');
  socket.removeAllListeners('error');
  socket.on('error', () => {});
  const { processID, secretKey } = client as unknown as { processID: number; secretKey: number };
  return {
    socket,
    parameters,
    pid: processID,
    key: secretKey,
    close: () => {
      if (!socket.destroyed) socket.end(Buffer.from([0x58, 0, 0, 0, 4])); // Terminate
      setTimeout(() => socket.destroy(), 1000).unref();
    },
  };
}

function redact(message: string, password: string): string {
  return password.length > 0 ? message.split(password).join('…') : message;
}
