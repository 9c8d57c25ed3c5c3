/**
 * @module The one error type of drover. Everything below the top level throws a `DroverError` with a
 * code; only the HTTP layer (`app.onError`), the MCP tool wrapper and the CLI's main turn it into output.
 */

/** Error codes and the HTTP status each one renders as. */
const STATUS = {
  invalid_input: 400,
  bad_config: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  unknown_op: 404,
  conflict: 409,
  claimed: 409,
  illegal_transition: 409,
  stale_fence: 409,
  blocked_by_deps: 409,
  not_holder: 409,
  already_running: 409,
  not_initialized: 409,
  diverged: 409,
  too_large: 413,
  internal: 500,
  offline: 503,
  busy: 503,
} as const;

export type ErrorCode = keyof typeof STATUS;

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
    return STATUS[this.code];
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
