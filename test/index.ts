/**
 * What the benchmarks borrow from the tests: private nats-servers (one, or a cluster of three on
 * loopback) that a run can kill and start without touching the machine's shared server.
 */
export { natsCluster, type TestNatsCluster } from "./helpers/nats-cluster.ts";
export { natsServer } from "./helpers/nats-server.ts";
