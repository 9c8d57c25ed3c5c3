/**
 * @module The contract every feature implements. A feature is a folder `features/<name>/` whose `index.ts`
 * default-exports `defineFeature({...})`; the runtime turns its ops into HTTP routes, MCP tools, CLI
 * commands and timer/trigger actions with no per-op glue.
 */
import type { Database } from "bun:sqlite";
import type { Hono } from "hono";
import type { z } from "zod";
import type { Bus } from "./bus.ts";
import type { Clock } from "./clock.ts";
import type { Config } from "./config.ts";
import type { BusEvent, EventCause, EventType } from "./events.ts";
import type { Logger } from "./logger.ts";
import type { Paths } from "./paths.ts";
import type { TrustRule, Untrusted } from "./trust.ts";

/** How an op was reached; actions carry the cause of the event that led to them. */
export interface OpCall {
  via: "http" | "mcp" | "cli" | "action" | "internal";
  cause?: EventCause;
  /** Given by the client (`Idempotency-Key`, `idempotency_key`), or derived from the op that runs this one. */
  idempotencyKey?: string;
}

export interface OpRunner {
  run(name: string, input: unknown, call?: OpCall): Promise<unknown>;
  get(name: string): OpDef | undefined;
}

/** What the runtime hands every feature. */
export interface Context {
  config: Config;
  db: Database;
  bus: Bus;
  log: Logger;
  clock: Clock;
  paths: Paths;
  machineId: string;
  /** "daemon" inside `drover serve`; "cli" when a command runs an op in its own process. */
  mode: "daemon" | "cli";
  /** Values of the committed config that wait for `drover trust` on this machine (`config` holds what is in force). */
  untrusted: Untrusted[];
  ops: OpRunner;
  /** Shared services features expose to each other by name (e.g. the hub), set up in `setup`. */
  services: Services;
}

/** Services are declared by the features that provide them (module augmentation). */
export interface Services {}

export interface OpDef<S extends z.ZodType = z.ZodType, R = unknown> {
  description: string;
  /** True when the op changes anything (stored state, files, the hub): it then takes an idempotency key. */
  writes: boolean;
  /** A choice for a person at the CLI (forcing the team's history): refused over HTTP, MCP and actions. */
  cliOnly?: boolean;
  input: S;
  run(ctx: Context, input: z.output<S>, call: OpCall): R | Promise<R>;
  /** How the CLI shows the result: table columns (dotted paths) and, for an empty answer, the refusal line. */
  view?: OpView<R>;
}

export interface OpView<R> {
  columns?: string[];
  /** Extra CLI-only flags that print the result another way (`--path-only`). */
  flags?: Record<string, { description: string; render: (result: R) => string }>;
  /** A message when the result means "nothing": the CLI prints it and exits 1. */
  empty?: (result: R) => string | undefined;
}

/** A short account of what a reconcile changed; `changed` is 0 when it found nothing to do. */
export interface ReconcileReport {
  changed: number;
  [detail: string]: unknown;
}

export type EventHandler = (ctx: Context, event: BusEvent) => void | Promise<void>;

export interface Feature {
  name: string;
  /** SQL run once each, in order; append, never edit. */
  migrations?: readonly string[];
  /**
   * Config keys (dotted) whose values have effects — where a credential goes, a branch git acts on, a command —
   * with the rule saying when a value does: such a value takes effect only once this machine trusts it (core/trust.ts).
   */
  trust?: Record<string, TrustRule>;
  /** Called in every process (daemon and CLI) before any op runs; registers services. */
  setup?: (ctx: Context) => void | Promise<void>;
  ops?: Record<string, OpDef<any, any>>;
  /** Extra Hono routes (REST) the feature serves. */
  handler?: (ctx: Context) => Hono;
  /** Bus subscriptions by event type; "*" receives every event. */
  on?: Partial<Record<EventType | "*", EventHandler>>;
  tick?: (ctx: Context) => void | Promise<void>;
  reconcile?: (ctx: Context) => ReconcileReport | Promise<ReconcileReport>;
  /** Daemon only: start watchers and loops; `stop` ends them. */
  start?: (ctx: Context) => void | Promise<void>;
  stop?: (ctx: Context) => void | Promise<void>;
}

/** Declares a feature; the identity function exists for type checking and a uniform shape. */
export function defineFeature<F extends Feature>(feature: F): F {
  return feature;
}

/** Declares an op so its input type flows into `run`. */
export function defineOp<S extends z.ZodType, R>(op: OpDef<S, R>): OpDef<S, R> {
  return op;
}
