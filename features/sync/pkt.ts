/**
 * @module git's pkt-line framing, as the smart HTTP answers drover reads (ref advertisements, upload-pack and
 * receive-pack results) use it: four hex digits giving the length (themselves included), then the payload;
 * `0000` is a flush. A length that is not one is a remote that does not speak the protocol.
 */
import { DroverError } from "../../core/errors.ts";

export const FLUSH = "0000";
/** The id git advertises for "nothing" (an empty repository's capabilities line). */
export const ZERO_ID = "0".repeat(40);

/** One packet holding `payload`. */
export function pktLine(payload: string | Buffer): Buffer {
  const body = typeof payload === "string" ? Buffer.from(payload) : payload;
  return Buffer.concat([Buffer.from((body.length + 4).toString(16).padStart(4, "0")), body]);
}

/**
 * The packet starting at `at`: its payload (null for a flush) and where the next one starts; undefined when `data`
 * ends inside it (a stream: more is to come). Throws when the length is not a pkt-line length.
 */
export function readPacket(data: Buffer, at: number): { payload: Buffer | null; next: number } | undefined {
  if (at + 4 > data.length) return undefined;
  const digits = data.toString("latin1", at, at + 4);
  const len = /^[0-9a-f]{4}$/i.test(digits) ? Number.parseInt(digits, 16) : Number.NaN;
  if (len === 0) return { payload: null, next: at + 4 };
  if (!(len >= 4)) throw new DroverError("offline", "Cannot read the hub remote's answer: it is not a packet stream");
  if (at + len > data.length) return undefined;
  return { payload: data.subarray(at + 4, at + len), next: at + len };
}

/** Every whole packet of `data`, flushes as null. */
export function packets(data: Buffer): Array<Buffer | null> {
  const out: Array<Buffer | null> = [];
  for (let at = 0, p = readPacket(data, 0); p; at = p.next, p = readPacket(data, at)) out.push(p.payload);
  return out;
}

/** The refs an advertisement's packets name (ref → id), the zero id left out. */
export function advertisedRefs(lines: Array<Buffer | null>): Map<string, string> {
  const refs = new Map<string, string>();
  for (const line of lines) {
    const [oid, name] = (line?.toString("latin1").split("\0")[0] ?? "").trim().split(" ");
    if (name && oid && /^[0-9a-f]{40}$/.test(oid) && oid !== ZERO_ID) refs.set(name, oid);
  }
  return refs;
}
