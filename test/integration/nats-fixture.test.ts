// Proves the nats-server fixture against a real server: core messaging, JetStream dedup and
// durable consumers, survival of a SIGKILL + restart, system-account advisories, missing binary.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { AckPolicy, StorageType, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { NATS_TEST_USERS, startNatsServer, uniquePrefix } from "../support/nats-fixture.js";
import type { NatsServerHandle } from "../support/nats-fixture.js";
import { waitFor } from "../support/wait.js";

// Reads AckFloor.Stream from a durable's state file (encodeConsumerState, version 2: magic, version,
// uvarint AckFloor.Consumer, uvarint AckFloor.Stream, ...); small sequences fit in one byte.
async function consumerAckFloorOnDisk(storeDir: string, stream: string, durable: string): Promise<number> {
  const buf = await readFile(join(storeDir, "jetstream", "$G", "streams", stream, "obs", durable, "o.dat"));
  if (buf.length < 4 || buf[1] !== 2 || buf[2]! >= 0x80 || buf[3]! >= 0x80) return -1;
  return buf[3]!;
}

const connections: NatsConnection[] = [];

async function open(server: NatsServerHandle, extra: Parameters<typeof connect>[0] = {}): Promise<NatsConnection> {
  const nc = await connect({ servers: server.url, ...extra });
  connections.push(nc);
  return nc;
}

afterEach(async () => {
  for (const nc of connections.splice(0)) await nc.close().catch(() => {});
});

describe("nats-server fixture", () => {
  let server: NatsServerHandle;

  beforeAll(async () => {
    server = await startNatsServer();
  });

  afterAll(async () => {
    await server?.cleanup();
  });

  it("starts a server on 127.0.0.1 with a random port and a temp store dir", () => {
    expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
    expect(server.port).toBeGreaterThan(0);
    expect(server.storeDir).toMatch(/muster-nats-/);
    if (server.backend === "binary") expect(server.pid).toBeTypeOf("number");
  });

  it("round-trips a core publish/subscribe message", async () => {
    const nc = await open(server);
    const subject = `${uniquePrefix("core")}.hello`;
    const sub = nc.subscribe(subject, { max: 1 });
    nc.publish(subject, "hi");
    for await (const m of sub) {
      expect(m.subject).toBe(subject);
      expect(m.string()).toBe("hi");
    }
    expect(sub.getProcessed()).toBe(1);
  });

  it("gives each call a distinct subject-safe prefix", () => {
    const a = uniquePrefix();
    const b = uniquePrefix("My Test!");
    expect(a).toMatch(/^t_[a-z0-9]{8}$/);
    expect(b).toMatch(/^t_my_test_[a-z0-9]{8}$/);
    expect(uniquePrefix()).not.toBe(a);
  });
});

describe("nats-server fixture across a crash", () => {
  let server: NatsServerHandle;
  let storeDir: string;

  beforeAll(async () => {
    // An explicit store dir so the test can read server state on disk with either backend.
    storeDir = await mkdtemp(join(tmpdir(), "muster-nats-crash-"));
    server = await startNatsServer({ storeDir });
    expect(server.storeDir).toBe(storeDir);
  });

  afterAll(async () => {
    await server?.cleanup();
    if (storeDir) await rm(storeDir, { recursive: true, force: true });
  });

  it("keeps a file stream and a durable consumer's position across SIGKILL and restart", async () => {
    const prefix = uniquePrefix("js");
    const stream = prefix.toUpperCase();
    const nc = await open(server, { reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);

    await jsm.streams.add({ name: stream, subjects: [`${prefix}.>`], storage: StorageType.File });
    const first = await js.publish(`${prefix}.a`, "one", { msgID: "m1" });
    expect(first).toMatchObject({ stream, seq: 1, duplicate: false });
    const dup = await js.publish(`${prefix}.a`, "one again", { msgID: "m1" });
    expect(dup).toMatchObject({ stream, seq: 1, duplicate: true });
    expect((await jsm.streams.info(stream)).state.messages).toBe(1);

    await jsm.consumers.add(stream, { durable_name: "worker", ack_policy: AckPolicy.Explicit });
    const consumer = await js.consumers.get(stream, "worker");
    const m1 = await consumer.next({ expires: 2_000 });
    expect(m1?.string()).toBe("one");
    expect(await m1!.ackAck()).toBe(true);
    expect((await jsm.consumers.info(stream, "worker")).ack_floor.stream_seq).toBe(1);
    // nats-server 2.9 writes consumer state to disk up to 100 ms after an ack, so a SIGKILL
    // right after ackAck() can lose the ack; wait until the state file records ack floor 1.
    await waitFor(async () => (await consumerAckFloorOnDisk(server.storeDir, stream, "worker")) >= 1, {
      timeoutMs: 5_000,
      message: "consumer ack floor was not written to disk",
    });

    let reconnects = 0;
    void (async () => {
      for await (const s of nc.status()) if (s.type === "reconnect") reconnects++;
    })();
    const oldPid = server.pid;
    await server.kill("SIGKILL");
    expect(server.pid).toBeUndefined();
    await server.restart();
    if (server.backend === "binary") expect(server.pid).not.toBe(oldPid);
    await waitFor(() => reconnects > 0, { timeoutMs: 10_000, message: "client did not reconnect" });

    const info = await waitFor(() => jsm.streams.info(stream), { timeoutMs: 10_000, message: `stream ${stream} after restart` });
    expect(info.state.messages).toBe(1);
    expect(info.config.storage).toBe(StorageType.File);

    await waitFor(() => js.publish(`${prefix}.b`, "two", { msgID: "m2" }), { timeoutMs: 10_000, message: "publish after restart" });
    const resumed = await js.consumers.get(stream, "worker");
    const m2 = await resumed.next({ expires: 2_000 });
    expect(m2?.string()).toBe("two");
    expect(m2?.seq).toBe(2);
    expect(m2?.info.redelivered).toBe(false);
    expect(await m2!.ackAck()).toBe(true);
  });

});

describe("nats-server fixture with a system account", () => {
  let server: NatsServerHandle;

  beforeAll(async () => {
    server = await startNatsServer({ systemAccount: true });
  });

  afterAll(async () => {
    await server?.cleanup();
  });

  it("delivers $SYS disconnect advisories for app connections", async () => {
    const sys = await open(server, NATS_TEST_USERS.sys);
    const sub = sys.subscribe("$SYS.ACCOUNT.*.DISCONNECT");
    await sys.flush();
    const seen: Array<{ account: string; name: string | undefined }> = [];
    void (async () => {
      for await (const m of sub) {
        const body = m.json<{ client?: { acc?: string; name?: string } }>();
        seen.push({ account: body.client?.acc ?? "", name: body.client?.name });
      }
    })();

    const app = await connect({ servers: server.url, name: "short-lived", ...NATS_TEST_USERS.app });
    const jsm = await jetstreamManager(app);
    expect((await jsm.getAccountInfo()).streams).toBe(0);
    await app.close();

    await expect
      .poll(() => seen.find((s) => s.name === "short-lived"), { timeout: 5_000, interval: 20 })
      .toEqual({ account: "APP", name: "short-lived" });
    sub.unsubscribe();
  });
});

describe("nats-server fixture without a binary", () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it("rejects with an install hint when nats-server cannot be found", async () => {
    vi.stubEnv("MUSTER_TEST_NATS", "binary");
    vi.stubEnv("NATS_SERVER_BIN", "/nonexistent");
    await expect(startNatsServer()).rejects.toThrow(
      "nats-server not found: install it (apt-get install -y nats-server, or download from " +
        "https://github.com/nats-io/nats-server/releases) or set NATS_SERVER_BIN",
    );
  });
});
