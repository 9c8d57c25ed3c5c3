/**
 * @module The contract every feature implements. A feature is a folder `features/<name>/` whose `index.ts`
 * default-exports `defineFeature({...})`; the runtime turns its ops into HTTP routes, MCP tools, CLI
 * commands and timer/trigger actions with no per-op glue. What a feature adds to shared name spaces (events,
 * error codes, config keys, ops other features call, services, the context) it declares in its own folder
 * by declaration merging into the interfaces here and beside them.
 */
import type { Database } from "bun:sqlite";
import type { Hono } from "hono";
import type { z } from "zod";
import type { Bus } from "./bus.ts";
import type { Clock } from "./clock.ts";
import { type Config, registerConfig } from "./config.ts";
import type { Contract } from "./contract.ts";
import { registerErrors } from "./errors.ts";
import { type BusEvent, type EventCause, type EventType, registerEvents } from "./events.ts";
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

/** The call an op's `run` serves: how it was reached, and the op's own name. */
export interface ActiveCall extends OpCall {
  op: string;
}

/**
 * Ops other features may call with types, one entry per op (`"<name>": typeof <its definition>`), merged in by the
 * feature that owns the op. An op calls its own feature's ops through that feature's functions, not here.
 */
// biome-ignore lint/suspicious/noEmptyInterface: features merge their ops into it
export interface OpMap {}

export type OpName = keyof OpMap & string;
export type OpInput<N extends OpName> = OpMap[N] extends { input: infer S extends z.ZodType } ? z.input<S> : never;
export type OpResult<N extends OpName> = OpMap[N] extends { run(...args: never[]): infer R } ? Awaited<R> : never;

export interface OpRunner {
  /** Runs an op by name with input from outside (a front door): validated, typed as unknown. */
  run(name: string, input: unknown, call?: OpCall): Promise<unknown>;
  /** Runs another feature's op with its types (input and answer), as `run` does. */
  call<N extends OpName>(name: N, input: OpInput<N>, call?: OpCall): Promise<OpResult<N>>;
  get(name: string): OpDef | undefined;
  /** Every op by name, with the feature that declares it. */
  list(): Array<{ name: string; feature: string; op: OpDef }>;
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
  /**
   * Where this daemon answers, and its token: set by `drover serve` once it listens, before the features start (a
   * run started then must reach it); null in a command's own process.
   */
  endpoint: { url: string; token: string } | null;
  /** Values of the committed config that wait for `drover trust` on this machine (`config` holds what is in force). */
  untrusted: Untrusted[];
  ops: OpRunner;
  /** A feature's own long-lived state (its watcher, its queue), set up in `setup`; other features use its ops. */
  services: Services;
}

/** Services are declared by the features that keep them (module augmentation). */
// biome-ignore lint/suspicious/noEmptyInterface: features merge their services into it
export interface Services {}

export interface OpDef<S extends z.ZodType = z.ZodType, R = unknown> {
  description: string;
  /** True when the op changes anything (stored state, files, the hub): it then takes an idempotency key. */
  writes: boolean;
  /** A choice for a person at the CLI (forcing the team's history): refused over HTTP, MCP and actions. */
  cliOnly?: boolean;
  /**
   * Its work lives in the daemon (the processes it supervises, its relay): a command sends it to the running daemon
   * rather than running it in its own process.
   */
  inDaemon?: boolean;
  /** It may undo others' work or remove what cannot be had back (MCP's `destructiveHint`; default false). */
  destructive?: boolean;
  /** Running it again with the same input changes nothing more (MCP's `idempotentHint`; reads always are). */
  idempotent?: boolean;
  input: S;
  run(ctx: Context, input: z.output<S>, call: ActiveCall): R | Promise<R>;
  /** Its REST route besides `POST /api/ops/<name>`; path parameters (`:id`) fill input fields of that name. */
  http?: OpRoute;
  /** How the CLI shows the result: table columns (dotted paths) and, for an empty answer, the refusal line. */
  view?: OpView<R>;
}

/** A GET takes its input from the query string, a POST or DELETE from the JSON body; `status` on success. */
export interface OpRoute {
  method: "GET" | "POST" | "DELETE";
  path: `/api/${string}`;
  status?: 200 | 201;
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

export type EventHandler<T extends EventType = EventType> = (ctx: Context, event: BusEvent<T>) => void | Promise<void>;

/** Bus subscriptions by event type, each handler typed by its event; "*" receives every event. */
export type EventHandlers = { [T in EventType]?: EventHandler<T> } & { "*"?: EventHandler };

/** A feature: its contract (`events`, `errors`, `config`, merged into `Contracts` in its folder), and its parts. */
export interface Feature extends Contract {
  name: string;
  /** SQL run once each, in order; append, never edit. */
  migrations?: readonly string[];
  /** The name its migrations are recorded under when it is not `name` (their history moved with the code). */
  migrationsKey?: string;
  /** What lives only in this machine's `state.db` (lost when a damaged one is rebuilt from the hub), for people. */
  localOnly?: readonly string[];
  /**
   * Config keys (dotted) whose values have effects — where a credential goes, a branch git acts on, a command —
   * with the rule saying when a value does: such a value takes effect only once this machine trusts it (core/trust.ts).
   */
  trust?: Record<string, TrustRule>;
  /** Called in every process (daemon and CLI) before any op runs; registers services. */
  setup?: (ctx: Context) => void | Promise<void>;
  // biome-ignore lint/suspicious/noExplicitAny: each op has its own input and answer; `run` takes its own input type
  ops?: Record<string, OpDef<any, any>>;
  /** Routes that are no op (a feature's own protocol); an op's REST route is declared on the op (`http`). */
  handler?: (ctx: Context) => Hono;
  on?: EventHandlers;
  tick?: (ctx: Context) => void | Promise<void>;
  reconcile?: (ctx: Context) => ReconcileReport | Promise<ReconcileReport>;
  /** Daemon only: start watchers and loops; `stop` ends them. */
  start?: (ctx: Context) => void | Promise<void>;
  stop?: (ctx: Context) => void | Promise<void>;
}

/** Declares a feature and registers its events, error codes and config keys, so they exist once it is loaded. */
export function defineFeature<F extends Feature>(feature: F): F {
  registerEvents(feature.events ?? {});
  registerErrors(feature.errors ?? {});
  registerConfig(feature.config ?? []);
  return feature;
}

/** Declares an op so its input type flows into `run`. */
export function defineOp<S extends z.ZodType, R>(op: OpDef<S, R>): OpDef<S, R> {
  return op;
}
