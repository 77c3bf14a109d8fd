import { it } from "vitest";
import { startCluster } from "../support/cluster.js";
it("probe", async () => {
  const t0 = Date.now();
  const c = await startCluster({ agents: 1 });
  console.log("started in", Date.now() - t0, c.nats.backend);
  await c.stop();
}, 60000);
