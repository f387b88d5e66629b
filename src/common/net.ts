// Ports for servers that must name their own address before they listen (dev issuers, sshd_config).
import { createServer } from 'node:net';

/**
 * `preferred` when it is free on `host` now, else any free port. Free when probed is not free when
 * bound: a caller that can bind port 0 itself, or retry on EADDRINUSE, should.
 */
export function freePort(preferred = 0, host = '127.0.0.1'): Promise<number> {
  const attempt = (port: number) =>
    new Promise<number>((ok, fail) => {
      const probe = createServer();
      probe.once('error', fail);
      probe.listen(port, host, () => {
        const p = (probe.address() as { port: number }).port;
        probe.close(() => ok(p));
      });
    });
  return preferred === 0 ? attempt(0) : attempt(preferred).catch(() => attempt(0));
}
