/**
 * @module A person's choice after the remote's hub branch was rewritten (`drover sync adopt`, `drover sync
 * restore`): take the remote's history — this machine's confirmed ops it lacks go out again — or force this
 * machine's confirmed history back onto it with a compare-and-swap on the head it saw. The head that leaves the
 * branch is kept under `refs/drover/diverged/`.
 */

import { DroverError } from "../../core/errors.ts";
import type { Context } from "../../core/feature.ts";
import type { Hub } from "../../hub/types.ts";
import { keepHead, movedForward, opsMissingFrom } from "./history.ts";
import type { Transport } from "./transport.ts";

export async function recover(
  ctx: Context,
  hub: Hub,
  options: { transport: Transport; choice: "adopt" | "restore" },
): Promise<void> {
  const { transport: t, choice } = options;
  const { head: fetched } = await t.fetch();
  await hub.exclusive(async () => {
    const base = hub.state("remote_head");
    if (!hub.state("diverged") || fetched === null || (await movedForward(hub.repo, base, fetched))) {
      throw new DroverError("conflict", `Cannot ${choice}: the remote's history has not diverged from this machine's`);
    }
    const [local, remote] = [base!, fetched];
    if (choice === "restore") {
      const kept = keepHead(hub.repo, "remote", remote);
      if (!(await t.push(local, remote)))
        throw new DroverError("conflict", "Cannot restore: the remote moved meanwhile; try again");
      hub.setState("diverged", null);
      ctx.log.warn(`Forced this machine's history back onto the remote; the rewritten head is kept as "${kept}"`);
      ctx.bus.publish("hub_restored", { head: local, remote_was: remote });
      return;
    }
    const kept = keepHead(hub.repo, "local", (await hub.repo.head()) ?? local);
    const missing = await opsMissingFrom(hub.repo, { local, remote, machineId: ctx.machineId });
    await hub.adopt(remote, {
      inTransaction() {
        ctx.hub.outbox.requeue(missing, remote);
        hub.setState("remote_head", remote);
        hub.setState("diverged", null);
      },
    });
    ctx.log.warn(
      `Took the remote's rewritten history; ${missing.length} op(s) of this machine go out again; the old head is kept as "${kept}"`,
    );
  });
}
