/**
 * The JetStream streams and KV buckets of one installation, created (or updated) idempotently by
 * the supervisor at start. Only features of nats-server 2.9 are used.
 */
import { DiscardPolicy, RetentionPolicy, StorageType, type JetStreamManager, type StreamConfig } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Subjects } from "../protocol/index.js";

/** Sizing of the streams. */
export interface StreamOptions {
  readonly replicas: number;
  /** How long events, job records and dead letters are kept, seconds. */
  readonly retentionSeconds: number;
}

const NANOS_PER_SECOND = 1_000_000_000;
/** JetStream's de-duplication window for message ids, seconds. */
export const DUPLICATE_WINDOW_SECONDS = 120;

/** The stream configurations, by role. */
export function streamConfigs(subjects: Subjects, opts: StreamOptions): Record<keyof Subjects["streams"], Partial<StreamConfig> & { name: string }> {
  const s = subjects.streams;
  const common = {
    storage: StorageType.File,
    num_replicas: opts.replicas,
    retention: RetentionPolicy.Limits,
    duplicate_window: DUPLICATE_WINDOW_SECONDS * NANOS_PER_SECOND,
  };
  const maxAge = Math.round(opts.retentionSeconds * NANOS_PER_SECOND);
  return {
    events: { ...common, name: s.events.name, subjects: [...s.events.subjects], max_age: maxAge, max_msg_size: 1024 * 1024 },
    jobs: { ...common, name: s.jobs.name, subjects: [...s.jobs.subjects], max_age: maxAge, max_msg_size: 1024 * 1024 },
    nodes: { ...common, name: s.nodes.name, subjects: [...s.nodes.subjects], max_msgs_per_subject: 1, max_msg_size: 64 * 1024 },
    io: {
      ...common,
      name: s.io.name,
      subjects: [...s.io.subjects],
      max_age: Math.min(maxAge, 24 * 3600 * NANOS_PER_SECOND),
      max_bytes: 1024 * 1024 * 1024,
      discard: DiscardPolicy.Old,
      max_msg_size: 256 * 1024,
    },
    dlq: { ...common, name: s.dlq.name, subjects: [...s.dlq.subjects], max_age: maxAge, max_bytes: 256 * 1024 * 1024, discard: DiscardPolicy.Old },
  };
}

/** Creates every stream, or updates one that exists with a different configuration. */
export async function ensureStreams(jsm: JetStreamManager, subjects: Subjects, opts: StreamOptions): Promise<void> {
  for (const cfg of Object.values(streamConfigs(subjects, opts))) {
    try {
      await jsm.streams.info(cfg.name);
      await jsm.streams.update(cfg.name, cfg);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await jsm.streams.add(cfg);
    }
  }
}

/** Opens (creating when missing) the KV bucket holding job snapshots. */
export async function openSnapshotBucket(nc: NatsConnection, subjects: Subjects, opts: StreamOptions): Promise<KV> {
  const kvm = new Kvm(nc);
  return kvm.create(subjects.buckets.snapshots, { history: 1, replicas: opts.replicas, storage: StorageType.File });
}

function isNotFound(err: unknown): boolean {
  const e = err as { code?: unknown; message?: string; api_error?: { err_code?: number } };
  return e?.api_error?.err_code === 10059 || /not found/i.test(e?.message ?? "");
}
