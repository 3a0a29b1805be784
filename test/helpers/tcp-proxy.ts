import { createConnection, createServer, type Server, type Socket } from "node:net";

export interface TcpProxy extends AsyncDisposable {
  port: number;
  /** Cuts every connection at once and refuses new ones (ECONNREFUSED), as a server gone down would. */
  cut(): Promise<void>;
  /** Listens again on the same port. */
  restore(): Promise<void>;
  /**
   * While on, what the server sends is dropped and what the client sends still arrives: a
   * statement is done, its answer lost (a COMMIT that committed, unknown to the client).
   */
  muteReplies(on: boolean): void;
}

/** A TCP proxy on a free loopback port to `host:port`, which a test can cut and restore. */
export async function tcpProxy(host: string, port: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let server: Server;
  let listenPort = 0;
  let muted = false;
  const listen = () =>
    new Promise<void>((res, rej) => {
      server = createServer((client) => {
        const upstream = createConnection({ host, port });
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on("close", () => sockets.delete(s));
          s.on("error", () => {});
        }
        client.pipe(upstream);
        upstream.on("data", (chunk: Buffer) => {
          if (!muted) client.write(chunk);
        });
        client.on("close", () => upstream.destroy());
        upstream.on("close", () => client.destroy());
      });
      server.once("error", rej);
      server.listen(listenPort, "127.0.0.1", () => {
        listenPort = (server.address() as { port: number }).port;
        res();
      });
    });
  await listen();
  const cut = async () => {
    const closed = new Promise<void>((r) => server.close(() => r()));
    for (const s of sockets) s.resetAndDestroy();
    await closed;
  };
  return {
    get port() {
      return listenPort;
    },
    cut,
    restore: listen,
    muteReplies(on) {
      muted = on;
    },
    async [Symbol.asyncDispose]() {
      if (server.listening) await cut();
    },
  };
}
