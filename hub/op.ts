/**
 * @module Hub ops and mutations, each declared once. A mutation is what an op does to hub files, replayable:
 * its effect depends only on its recorded args and the files it reads, so sync can run it again on another
 * machine's tree. A hub op is an op (four front doors) whose work is one mutation: its input schema, the args
 * it records, the mutation and its answer in one definition, typed end to end. The hub layer registers every
 * hub op's mutation with the writer; a feature registers its internal mutations (`ctx.hub.define`) itself.
 */
import type { z } from "zod";
import type { Context, OpDef } from "../core/feature.ts";
import type { HubTx } from "./apply.ts";

export type Args = Record<string, unknown>;

export interface Mutation<A extends Args = Args, R = unknown> {
  readonly name: string;
  /** Recorded args are checked before each run: a replay reads them back from commits. */
  readonly args: z.ZodType<A>;
  /** Choices the first run makes (a new id, the item picked) are written into `args`, so a replay repeats them. */
  apply(args: A, tx: HubTx, ctx: Context): R;
}

/** A mutation that is no op of its own (expiring a claim, archiving): run by its feature through `ctx.hub.run`. */
export function defineMutation<A extends Args, R>(name: string, def: Omit<Mutation<A, R>, "name">): Mutation<A, R> {
  return { name, ...def };
}

export interface HubOpDef<S extends z.ZodObject = z.ZodObject, A extends Args = Args, R = unknown, Out = unknown>
  extends OpDef<S, Out> {
  /** Named by the op (the registry's key) when the hub layer registers it. */
  mutation: Omit<Mutation<A, R>, "name">;
  /** How one recorded op reads in `drover log` beside its name (args may come from another machine: any shape). */
  summary?: (args: A) => string;
}

/** An op's own fields (it always writes; its `run` is made from the rest), and its mutation's. */
export interface HubOpSpec<S extends z.ZodObject, A extends Args, R, Out>
  extends Omit<OpDef<S, Out>, "run" | "writes"> {
  /** The args recorded with the op, when they are more than its input (defaults taken from config, choices). */
  args?: z.ZodType<A>;
  /** Turns the input into the recorded args, on the first run only (default: the input as it is). */
  record?: (ctx: Context, input: z.output<S>) => A | Promise<A>;
  apply(args: A, tx: HubTx, ctx: Context): R;
  /** How one recorded op reads in `drover log` beside its name. */
  summary?: (args: A) => string;
  /** With a remote, wait (bounded by this many seconds) until the op is pushed: a grant is safe only then. */
  confirmSecs?: (ctx: Context) => number;
  /** The op's answer from the mutation's result (default: the result). */
  answer?: (ctx: Context, ran: { result: R; confirmed: boolean }) => Out;
}

/** Declares an op whose work is one hub mutation; it always writes, so it takes an idempotency key. */
export function defineHubOp<S extends z.ZodObject, R, A extends Args = z.output<S>, Out = R>(
  spec: HubOpSpec<S, A, R, Out>,
): HubOpDef<S, A, R, Out> {
  const { record, confirmSecs, answer, args, apply, ...op } = spec;
  return {
    ...op,
    writes: true,
    mutation: { args: args ?? (spec.input as unknown as z.ZodType<A>), apply },
    async run(ctx, input, call) {
      // a copy: the mutation writes its choices into the args it records, not into the caller's input
      const recorded = record ? await record(ctx, input) : ({ ...input } as unknown as A);
      const { result, opId } = await ctx.hub.runTracked<R>(call.op, recorded);
      let ran = { result, confirmed: true };
      if (confirmSecs && result !== null) {
        const confirmation = await ctx.hub.confirm(opId, { timeoutMs: confirmSecs(ctx) * 1000 });
        // what the op did where it counts: on the remote's tree, when it was replayed there
        ran = {
          result: confirmation.confirmed && "result" in confirmation ? (confirmation.result as R) : result,
          confirmed: confirmation.confirmed,
        };
      }
      return answer ? answer(ctx, ran) : (ran.result as unknown as Out);
    },
  };
}

export function isHubOp(op: OpDef): op is HubOpDef {
  return "mutation" in op;
}
