/**
 * Which partition a gateway's readings belong to, and which live instance owns which partition.
 * Pure: the leases (processors/leases.ts) and the host decide with these, never with their own copy.
 *
 * Partitions are keyed by gateway: a terminal counts only from its registered gateway, and both a
 * single reading (`<p>.tel.<gw>.<terminal>`) and a batch (`<p>.telb.<gw>`) carry the gateway in
 * their subject, so every reading of a terminal lands in one partition without parsing a batch.
 */

/** FNV-1a (32 bits) of the gateway id, modulo the count: stable across processes and versions. */
export function partitionOf(gatewayId: string, count: number): number {
  if (count <= 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < gatewayId.length; i++) {
    h ^= gatewayId.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % count;
}

/**
 * The partitions each live instance should own: partition k goes to the k-th (mod M) of the
 * members sorted by id, so every instance that sees the same members computes the same split, and
 * the counts differ by at most one.
 */
export function assignPartitions(members: Iterable<string>, count: number): Map<string, number[]> {
  const sorted = [...new Set(members)].sort();
  const out = new Map<string, number[]>(sorted.map((m) => [m, []]));
  if (sorted.length === 0) return out;
  for (let k = 0; k < count; k++) out.get(sorted[k % sorted.length]!)!.push(k);
  return out;
}

/** The durable consumer of partition k: the unpartitioned name when there is one partition (upgrades resume it). */
export function partitionDurable(base: string, index: number, count: number): string {
  return count <= 1 ? base : `${base}_p${index}`;
}
