/**
 * How long the bench's keep-alive connections may idle. The throughput runs measure each server
 * in slices with the other servers' slices between them, and the slices must start on warm
 * connections: Node's default of 5 s would close them in the pause.
 */
import type { Server } from "node:http";

export const KEEP_ALIVE_MS = 120_000;

/** Has a bench server keep idle connections open as long as the load generator does. */
export function keepConnectionsOpen(server: unknown): void {
  (server as Server).keepAliveTimeout = KEEP_ALIVE_MS;
}
