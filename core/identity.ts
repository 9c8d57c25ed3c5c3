/**
 * @module This machine's identity and the API token, both made once by `init` and read by everything else.
 */
import { chmodSync, existsSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { DroverError } from "./errors.ts";
import { readRegularFile } from "./files.ts";
import type { Paths } from "./paths.ts";

/** Both files hold a line of text: anything larger is not one of them. */
const MAX_IDENTITY_BYTES = 4096;

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

/** Random lower-case base32 text of the given length. */
export function randomBase32(length: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  let out = "";
  for (const b of bytes) out += BASE32[b & 31];
  return out;
}

/** Reads `machine.json`, creating it with `<hostname>-<4 base32>` when missing. */
export function ensureMachineId(paths: Paths): string {
  if (existsSync(paths.machine)) return readMachineId(paths);
  const host =
    hostname()
      .replace(/[^A-Za-z0-9._-]/g, "-")
      .slice(0, 40) || "machine";
  const machine_id = `${host}-${randomBase32(4)}`;
  writeFileSync(paths.machine, JSON.stringify({ machine_id }, null, 2) + "\n", { flag: "wx", mode: 0o600 });
  return machine_id;
}

export function readMachineId(paths: Paths): string {
  try {
    const { machine_id } = JSON.parse(_readSmall(paths.machine)) as { machine_id?: unknown };
    if (typeof machine_id === "string" && machine_id) return machine_id;
  } catch {
    // reported below
  }
  throw new DroverError("bad_config", `Cannot read "${paths.machine}": expected {"machine_id": "..."}`);
}

/** Reads the API token, creating it (mode 0600) when missing. */
export function ensureToken(paths: Paths): string {
  if (existsSync(paths.token)) return readToken(paths);
  const token = Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString("hex");
  writeFileSync(paths.token, token + "\n", { mode: 0o600, flag: "wx" });
  chmodSync(paths.token, 0o600);
  return token;
}

export function readToken(paths: Paths): string {
  const token = _readSmall(paths.token).trim();
  if (!token) throw new DroverError("bad_config", `Cannot read "${paths.token}": the file is empty`);
  return token;
}

// --- internal ---

/** A small regular file's text; a FIFO or symlink planted in its place is refused, not waited on. */
function _readSmall(file: string): string {
  const read = readRegularFile(file, { maxBytes: MAX_IDENTITY_BYTES });
  if (read && "text" in read) return read.text;
  throw new DroverError("bad_config", `Cannot read "${file}": ${read ? read.error : "it does not exist"}`);
}
