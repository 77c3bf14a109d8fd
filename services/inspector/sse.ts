/** Server-Sent Events over a node:http response: one writer per client, with keep-alive comments. */
import type { IncomingMessage, ServerResponse } from "node:http";

/** One connected SSE client. */
export interface SseClient {
  /** Sends one event; returns false once the client is gone. */
  send(event: string, data: unknown): boolean;
  /** Ends the stream. */
  close(): void;
  /** Resolves when the client disconnects or the stream is closed. */
  readonly closed: Promise<void>;
}

/** Starts an SSE stream on `res`; comments every `keepAliveMs` keep proxies from closing it. */
export function openSse(req: IncomingMessage, res: ServerResponse, keepAliveMs = 15_000): SseClient {
  res.writeHead(200, {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache, no-transform",
    Connection: "keep-alive",
    "X-Accel-Buffering": "no",
  });
  res.write("retry: 2000\n\n");
  let open = true;
  let onClosed!: () => void;
  const closed = new Promise<void>((r) => (onClosed = r));
  const timer = setInterval(() => open && res.write(": keep-alive\n\n"), keepAliveMs);
  const finish = () => {
    if (!open) return;
    open = false;
    clearInterval(timer);
    onClosed();
  };
  req.once("close", finish);
  res.once("close", finish);
  return {
    send(event, data) {
      if (!open) return false;
      res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      return true;
    },
    close() {
      if (open) res.end();
      finish();
    },
    closed,
  };
}
