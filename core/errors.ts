/**
 * @module The one error type of drover. Everything below the top level throws a `DroverError` with a
 * code; only the HTTP layer (`app.onError`), the MCP tool wrapper and the CLI's main turn it into output. A
 * feature's codes, with the HTTP status each renders as, are declared in its contract (core/contract.ts).
 */
import type { ContractErrors } from "./contract.ts";

export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 500 | 503;

export const coreErrors = {
  invalid_input: 400,
  bad_config: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  unknown_op: 404,
  conflict: 409,
  already_running: 409,
  not_initialized: 409,
  too_large: 413,
  internal: 500,
  busy: 503,
} as const satisfies Record<string, ErrorStatus>;

/** Every error code: the runtime's and every feature's contract's. */
export type ErrorCode = keyof ContractErrors & string;

/** Adds error codes to the registry (`defineFeature` does it with a feature's); a code keeps its first status. */
export function registerErrors(codes: Record<string, ErrorStatus>): void {
  for (const [code, status] of Object.entries(codes)) {
    const known = _status.get(code);
    if (known !== undefined && known !== status)
      throw new Error(`Cannot declare error code "${code}" twice, with ${known} and ${status}`);
    _status.set(code, status);
  }
}

export interface DroverErrorOptions {
  details?: unknown;
  cause?: unknown;
}

/** A refusal or failure with a stable `code`; the message is safe to show to a client. */
export class DroverError extends Error {
  readonly code: ErrorCode;
  readonly details?: unknown;

  constructor(code: ErrorCode, message: string, options: DroverErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = "DroverError";
    this.code = code;
    this.details = options.details;
  }

  get status(): number {
    // a code no loaded feature declared renders as an internal error rather than as a wrong refusal
    return _status.get(this.code) ?? 500;
  }

  /** CLI exit code: 1 refused, 2 bad usage or input, 3 internal. */
  get exitCode(): 1 | 2 | 3 {
    if (this.code === "internal") return 3;
    if (this.status === 403 || this.status === 404 || this.status === 409 || this.status === 503) return 1;
    return 2;
  }

  toJSON(): { code: ErrorCode; message: string; details?: unknown } {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

/** Wraps anything thrown into a DroverError; unknown errors become `internal` with no internals exposed. */
export function toDroverError(err: unknown): DroverError {
  if (err instanceof DroverError) return err;
  return new DroverError("internal", "Internal error", { cause: err });
}

// --- internal ---

const _status = new Map<string, ErrorStatus>(Object.entries(coreErrors));
