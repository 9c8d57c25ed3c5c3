/**
 * @module The only place that knows about @parcel/watcher's native binding. The package's own loader uses a
 * computed `require` that `bun build --compile` cannot follow; this template literal becomes a constant per
 * `--target` (Bun inlines platform and arch), so the right `.node` file is embedded in the binary, and a
 * missing platform package fails the build rather than the user.
 */
import type { AsyncSubscription, Event, Options } from "@parcel/watcher";
import { createWrapper } from "@parcel/watcher/wrapper";

declare const WATCHER_LIBC: "glibc" | "musl" | undefined;

export type WatchEvent = Event;

export interface Watcher {
  subscribe(
    dir: string,
    fn: (err: Error | null, events: Event[]) => void,
    options?: Options,
  ): Promise<AsyncSubscription>;
}

let _watcher: Watcher | undefined;

/** The native watcher, loaded on first use. */
export function loadWatcher(): Watcher {
  if (_watcher) return _watcher;
  const binding = require(
    `@parcel/watcher-${process.platform}-${process.arch}${process.platform === "linux" ? `-${typeof WATCHER_LIBC === "string" ? WATCHER_LIBC : "glibc"}` : ""}`,
  );
  _watcher = createWrapper(binding) as Watcher;
  return _watcher;
}
