/**
 * @module The prompt a run starts with: the runner's template, or drover's, with the item's fields and its notes —
 * so a retried item's next run knows why the last one failed.
 */
import { fillTemplate } from "./presets.ts";

/** Drover's template: who the agent is, what to do, how to say it is done. */
export const DEFAULT_PROMPT = `You are the drover agent "{agent}". Pass "{agent}" as the agent of every drover tool call.
You hold drover item "{id}" (stage {stage}); your working folder {worktree} is its worktree, on its own branch.

# {title}

{body}
{notes}
Do the work the item asks for in this folder and commit it on this branch. When it is done, exit: drover moves the
item on. If you cannot finish, say why in your last message and exit with an error.`;

export interface PromptItem {
  id: string;
  title: string;
  body: string;
  stage: string;
  notes?: ReadonlyArray<{ at: string; agent_id: string | null; text: string }>;
}

export function renderPrompt(template: string, fields: { item: PromptItem; agent: string; worktree: string }): string {
  const { item } = fields;
  return fillTemplate(template || DEFAULT_PROMPT, {
    id: item.id,
    title: item.title,
    body: item.body,
    stage: item.stage,
    agent: fields.agent,
    worktree: fields.worktree,
    notes: _notes(item.notes ?? []),
  });
}

// --- internal ---

/** The latest notes, newest last, as a section of the prompt ("" when there are none). */
function _notes(notes: ReadonlyArray<{ at: string; agent_id: string | null; text: string }>): string {
  if (notes.length === 0) return "";
  const recent = notes.slice(-10);
  const lines = recent.map((n) => `- ${n.at}${n.agent_id ? ` (${n.agent_id})` : ""}: ${n.text}`);
  return `\n## Notes on this item (earlier runs, newest last)\n\n${lines.join("\n")}\n`;
}
