/**
 * @module What a feature adds to the runtime's shared name spaces — its events, error codes and config keys —
 * declared once in its folder with `defineContract` and merged into `Contracts` under the feature's name. The
 * bus's event types, the error codes and the config's shape are derived from every contract merged here.
 */
import type { z } from "zod";
import { type ConfigPart, coreConfig } from "./config.ts";
import { coreErrors, type ErrorStatus } from "./errors.ts";
import { coreEvents, type EventDef } from "./events.ts";

export interface Contract {
  events?: Record<string, EventDef>;
  errors?: Record<string, ErrorStatus>;
  config?: readonly ConfigPart[];
}

/** Declares a contract (identity at the type level); `defineFeature` registers what it holds. */
export function defineContract<const C extends Contract>(contract: C): C {
  return contract;
}

const runtimeContract = defineContract({ events: coreEvents, errors: coreErrors, config: Object.values(coreConfig) });

/** Every contract by owner: the runtime's here, each feature's merged in from its folder. */
export interface Contracts {
  runtime: typeof runtimeContract;
}

/** Every declared event type with its definition. */
export type ContractEvents = _UnionToIntersection<_Field<Contracts[keyof Contracts], "events">>;
/** Every declared error code with its status. */
export type ContractErrors = _UnionToIntersection<_Field<Contracts[keyof Contracts], "errors">>;
/** Every declared config part. */
export type ContractConfigPart = _Field<Contracts[keyof Contracts], "config">[number];

/** The fields of one declared section: the keys of every part declared in it. */
export type ContractSection<S extends string> = _UnionToIntersection<_KeysIn<ContractConfigPart, S>>;

// --- internal ---

type _UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void ? I : never;
/** A field of each contract that has it (distributes over the union of contracts). */
type _Field<C, K extends keyof Contract> = C extends { [P in K]: infer V } ? V : never;
type _KeysIn<P, S extends string> =
  P extends ConfigPart<S, infer T, infer E>
    ? ([keyof T] extends [never] ? unknown : z.output<z.ZodObject<T>>) &
        ([E] extends [z.ZodNever] ? unknown : Record<string, z.output<E>>)
    : never;
