/**
 * A TCP proxy on loopback that can break a stream on cue: armed with a sequence number, it cuts
 * every connection it holds right after relaying the SSE frame with that `id:`, the way a load
 * balancer restart or a flaky network drops a client mid-stream. It keeps listening, so the
 * client's reconnect goes through it again.
 */
import { once } from "node:events";
import { connect, createServer, type Socket } from "node:net";

export interface CuttingProxy {
  url: string;
  /** Cuts all connections once a response has carried `id: <seq>`; resolves when it has. */
  cutAfterEvent(seq: number): Promise<void>;
  close(): Promise<void>;
}

export async function startCuttingProxy(target: string): Promise<CuttingProxy> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  let armed: { marker: string; done: () => void } | undefined;

  const cutAll = (): void => {
    for (const socket of sockets) socket.destroy();
    sockets.clear();
  };

  const server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    sockets.add(client);
    sockets.add(upstream);
    client.on("data", (chunk: Buffer) => upstream.write(chunk));
    // The end of the previous chunk, so that a marker split between two chunks is still seen.
    let tail = "";
    upstream.on("data", (chunk: Buffer) => {
      const cue = armed;
      const text = tail + chunk.toString("latin1");
      const carried = tail.length;
      tail = text.slice(-32);
      // Only a marker that ends in this chunk counts: the tail may hold the end of an earlier response.
      const at = cue ? text.lastIndexOf(cue.marker) : -1;
      if (cue && at !== -1 && at + cue.marker.length > carried) {
        armed = undefined;
        // Relay the frame, then drop everything: the client has seen this event and nothing after it.
        client.write(chunk, () => {
          cutAll();
          cue.done();
        });
        return;
      }
      client.write(chunk);
    });
    const close = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("close", close).on("error", close);
    upstream.on("close", close).on("error", close);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}`,
    cutAfterEvent: (seq) => new Promise<void>((resolve) => (armed = { marker: `\nid: ${seq}\n`, done: resolve })),
    close: async () => {
      cutAll();
      server.close();
      await once(server, "close");
    },
  };
}
