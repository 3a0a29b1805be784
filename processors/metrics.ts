import type { Metric, Registry } from "prom-client";

/**
 * A stage's metric, made once per registry: the partitions of one process (and a partition started
 * again after a hand-over) count into the same series rather than fail on a second registration.
 */
export function shared<M extends Metric>(registry: Registry, name: string, make: () => M): M {
  return (registry.getSingleMetric(name) as M | undefined) ?? make();
}
