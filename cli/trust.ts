/**
 * @module `drover trust`: a person at this machine approves the committed config's values with effects (a hub
 * remote URL, a base branch, commands to run). Shown first, then approved on a "y", or at once with `--yes`
 * (scripts); without a terminal and without `--yes` nothing is approved.
 */
import { defineCommand } from "citty";
import { DroverError } from "../core/errors.ts";
import { approve } from "../core/trust.ts";
import { renderResult } from "./output.ts";
import { withRuntime } from "./project.ts";

export const trust = defineCommand({
  meta: {
    name: "trust",
    description:
      "Approve, on this machine, the committed config's values that have effects (remote URL, base branch, commands)",
  },
  args: { yes: { type: "boolean", description: "Approve without asking (for scripts)" } },
  async run({ args }) {
    await withRuntime(async (rt) => {
      const waiting = rt.ctx.untrusted;
      if (!waiting.length)
        return console.log(
          "Nothing waits: every value with effects in the committed config is approved on this machine",
        );
      console.log(`In "${rt.ctx.paths.config}", these values wait for this machine's approval:`);
      console.log(renderResult(waiting, ["key", "value", "using"]));
      if (!args.yes) {
        if (!process.stdin.isTTY)
          throw new DroverError(
            "invalid_input",
            `${waiting.length} value(s) wait for approval: run "drover trust --yes" to approve them without a prompt`,
          );
        if (!/^y(es)?$/i.test(prompt("Approve them on this machine? [y/N]")?.trim() ?? "")) {
          console.log("Nothing approved");
          process.exitCode = 1;
          return;
        }
      }
      approve(rt.ctx.db, waiting, rt.ctx.clock);
      console.log(
        `Approved ${waiting.map((u) => `"${u.key}"`).join(", ")}: in force on this machine now (a running daemon takes them within a second)`,
      );
    });
  },
});
