/**
 * A TCP proxy a test controls, to cut one process's network link without touching the process:
 * `pause()` stops forwarding bytes both ways (the connections stay open, as in a network partition
 * where packets are dropped), `resume()` delivers what was held and forwards again.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";

/** A running proxy. */
export interface TcpProxy {
  /** `nats://127.0.0.1:PORT`, to give the process behind the proxy. */
  readonly url: string;
  readonly port: number;
  /** Stops forwarding in both directions; bytes are held, not lost. */
  pause(): void;
  /** Forwards again, held bytes first. */
  resume(): void;
  readonly paused: boolean;
  close(): Promise<void>;
}

/** Starts a proxy on a random local port forwarding to `target` (`host:port` or a `nats://` URL). */
export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const u = new URL(target.includes("://") ? target : `tcp://${target}`);
  const host = u.hostname;
  const port = Number(u.port);
  const pairs = new Set<[Socket, Socket]>();
  let paused = false;
  const server: Server = createServer((client) => {
    const upstream = createConnection({ host, port });
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    if (paused) {
      client.pause();
      upstream.pause();
    }
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const own = (server.address() as { port: number }).port;
  return {
    url: `nats://127.0.0.1:${own}`,
    port: own,
    get paused() {
      return paused;
    },
    pause() {
      paused = true;
      // A paused readable is not read from: the bytes stay in the kernel, as packets in a dropped link would not arrive.
      for (const [a, b] of pairs) {
        a.pause();
        b.pause();
      }
    },
    resume() {
      paused = false;
      for (const [a, b] of pairs) {
        a.resume();
        b.resume();
      }
    },
    async close() {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
