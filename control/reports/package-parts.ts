/**
 * The most bytes of JSON one package message carries. A city franchisee's day (thousands of
 * terminals, each with its 24-hour curve) is megabytes, over NATS's `max_payload` (1 MiB by
 * default): such a message can never be published, and sat at the head of the outbox, retried
 * every round. A quarter of the default leaves room for a server set lower.
 */
export const PACKAGE_PART_BYTES = 256 * 1024;

export interface Parted {
  /** 1-based; every message of a package has both. */
  part: number;
  parts: number;
}

const bytes = (x: unknown) => Buffer.byteLength(JSON.stringify(x));

/**
 * A package as the messages that carry it: one when it fits in `maxBytes`, else its `terminals`
 * then its `faults` spread over parts in their order, each part under `maxBytes`, with everything
 * else (the period, the totals, `pendingSessions`) in every part. Joining the parts' terminals
 * and faults, in part order, gives the whole package.
 */
export function packageParts<P extends { terminals: unknown[]; faults: unknown[] }>(pkg: P, maxBytes = PACKAGE_PART_BYTES): (P & Parted)[] {
  // The fields every part repeats, with room for the largest part numbers.
  const head = bytes({ ...pkg, terminals: [], faults: [], part: 1e9, parts: 1e9 });
  if (head >= maxBytes) throw new RangeError(`a package's totals alone take ${head} bytes, over the ${maxBytes} of a message`);
  const parts: { terminals: unknown[]; faults: unknown[] }[] = [];
  let cur = { terminals: [] as unknown[], faults: [] as unknown[] };
  let size = head;
  const add = (list: "terminals" | "faults", item: unknown) => {
    const n = bytes(item) + 1; // and its comma
    if (head + n > maxBytes) throw new RangeError(`one entry of a package takes ${n} bytes, over the ${maxBytes} of a message`);
    if (size + n > maxBytes) {
      parts.push(cur);
      cur = { terminals: [], faults: [] };
      size = head;
    }
    cur[list].push(item);
    size += n;
  };
  for (const t of pkg.terminals) add("terminals", t);
  for (const f of pkg.faults) add("faults", f);
  parts.push(cur);
  return parts.map((p, i) => ({ ...pkg, terminals: p.terminals as P["terminals"], faults: p.faults as P["faults"], part: i + 1, parts: parts.length }));
}
