// The agent's outbox against a real nats-server: many publishes in flight, order kept per key,
// urgent messages ahead of queued ordinary ones (with their key's earlier messages), and fences.
// Messages are queued before the outbox is attached, so what is waiting when publishing starts is
// known exactly and the stored order is deterministic where the outbox promises an order.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { createLogger } from "../../src/logger.js";
import { Outbox } from "../../services/agent/index.js";
import { startNatsServer, uniquePrefix, type NatsServerHandle } from "../support/nats-fixture.js";

const logger = createLogger({ level: process.env.MUSTER_TEST_LOG ?? "silent", pretty: false });
let server: NatsServerHandle;
let nc: NatsConnection;
let jsm: JetStreamManager;

beforeAll(async () => {
  server = await startNatsServer();
  nc = await connect({ servers: server.url });
  jsm = await jetstreamManager(nc);
});

afterAll(async () => {
  await nc?.close();
  await server?.cleanup();
});

/** A stream of its own for one test; returns its subject prefix and a reader of what it stored, in order. */
async function stream(name: string): Promise<{ subject: (s: string) => string; stored: () => Promise<string[]> }> {
  const prefix = uniquePrefix(name);
  const streamName = prefix.toUpperCase();
  await jsm.streams.add({ name: streamName, subjects: [`${prefix}.>`] });
  return {
    subject: (s) => `${prefix}.${s}`,
    stored: async () => {
      const info = await jsm.streams.info(streamName);
      const out: string[] = [];
      for (let seq = 1; seq <= info.state.last_seq; seq++) {
        const m = await jsm.streams.getMessage(streamName, { seq });
        out.push(new TextDecoder().decode(m!.data));
      }
      return out;
    },
  };
}

const data = (s: string) => new TextEncoder().encode(s);

function outbox(window?: number): Outbox {
  return new Outbox({ logger, ackTimeoutMs: 5_000, ...(window === undefined ? {} : { window }) });
}

describe("Outbox", () => {
  it("publishes everything with many acknowledgements in flight, each key in its order", async () => {
    const s = await stream("window");
    const box = outbox(64);
    const acks: Promise<boolean>[] = [];
    for (let i = 0; i < 300; i++) {
      const key = `t${i % 50}`;
      acks.push(box.enqueue(s.subject(key), data(`${key}:${Math.floor(i / 50)}`), `m${i}`, { key }));
    }
    box.attach(jetstream(nc));
    expect(await Promise.all(acks)).toEqual(acks.map(() => true));
    await box.idle();
    expect(box.size).toBe(0);
    const stored = await s.stored();
    expect(stored).toHaveLength(300);
    for (let k = 0; k < 50; k++) {
      const mine = stored.filter((m) => m.startsWith(`t${k}:`));
      expect(mine).toEqual([0, 1, 2, 3, 4, 5].map((n) => `t${k}:${n}`));
    }
    box.close();
  });

  it("sends an urgent message ahead of queued ordinary ones, after its own key's earlier messages", async () => {
    const s = await stream("urgent");
    const box = outbox(16);
    const acks: Promise<boolean>[] = [];
    acks.push(box.enqueue(s.subject("fail"), data("fail:started"), "fs", { key: "fail" }));
    for (let i = 0; i < 200; i++) acks.push(box.enqueue(s.subject(`t${i}`), data(`t${i}:started`), `s${i}`, { key: `t${i}` }));
    acks.push(box.enqueue(s.subject("fail"), data("fail:ended"), "fe", { key: "fail", urgent: true }));
    box.attach(jetstream(nc));
    expect((await Promise.all(acks)).every(Boolean)).toBe(true);
    const stored = await s.stored();
    expect(stored).toHaveLength(202);
    // The urgent message's key goes first; its ended waits only for its started's acknowledgement,
    // so at most one window of ordinary messages is stored between them.
    expect(stored[0]).toBe("fail:started");
    const ended = stored.indexOf("fail:ended");
    expect(ended).toBeGreaterThan(0);
    expect(ended).toBeLessThanOrEqual(16 + 1);
    box.close();
  });

  it("stores a fence after everything queued before it and before everything queued after it", async () => {
    const s = await stream("fence");
    const box = outbox(32);
    const acks: Promise<boolean>[] = [];
    for (let i = 0; i < 40; i++) acks.push(box.enqueue(s.subject(`a${i}`), data(`before:${i}`), `b${i}`, { key: `a${i}` }));
    acks.push(box.enqueue(s.subject("node"), data("fence:1"), "f1", { fence: true }));
    for (let i = 0; i < 40; i++) acks.push(box.enqueue(s.subject(`a${i}`), data(`between:${i}`), `w${i}`, { key: `a${i}`, urgent: i === 39 }));
    acks.push(box.enqueue(s.subject("node"), data("fence:2"), "f2", { fence: true }));
    acks.push(box.enqueue(s.subject("a0"), data("after:0"), "x0", { key: "a0" }));
    box.attach(jetstream(nc));
    expect((await Promise.all(acks)).every(Boolean)).toBe(true);
    const stored = await s.stored();
    expect(stored).toHaveLength(83);
    expect(stored.slice(0, 40).every((m) => m.startsWith("before:"))).toBe(true);
    expect(stored[40]).toBe("fence:1");
    expect(stored.slice(41, 81).every((m) => m.startsWith("between:"))).toBe(true);
    expect(stored.slice(81)).toEqual(["fence:2", "after:0"]);
    box.close();
  });

  it("resolves false for what is still waiting when it closes, and idle() then resolves", async () => {
    const box = outbox();
    const waiting = [box.enqueue("never.a", data("x"), undefined, { key: "a" }), box.enqueue("never.b", data("y"), undefined, { fence: true })];
    expect(box.size).toBe(2);
    const idle = box.idle();
    box.close();
    expect(await Promise.all(waiting)).toEqual([false, false]);
    await idle;
    expect(box.size).toBe(0);
    expect(await box.enqueue("never.c", data("z"))).toBe(false);
  });

  it("keeps at most maxItems waiting, dropping the oldest unsent", async () => {
    const s = await stream("bounded");
    const box = new Outbox({ logger, ackTimeoutMs: 5_000, maxItems: 3 });
    const acks = [0, 1, 2, 3, 4].map((i) => box.enqueue(s.subject("dlq"), data(`m${i}`), `d${i}`));
    expect(await Promise.all(acks.slice(0, 2))).toEqual([false, false]);
    box.attach(jetstream(nc));
    expect(await Promise.all(acks.slice(2))).toEqual([true, true, true]);
    expect(await s.stored()).toEqual(["m2", "m3", "m4"]);
    box.close();
  });
});
