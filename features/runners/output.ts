/**
 * @module What a run's own output says: its token usage and cost, and whether the provider refused it for a rate
 * limit (and until when). Read line by line from Claude Code's stream-json (`result`, `rate_limit_event`) and
 * Codex's `--json` events (`turn.completed` usage, `error`/`turn.failed`); a `command` agent may print either
 * shape. A limit is also recognised in plain text ("usage limit reached", "hit your limit"), as older clients say it.
 */
import type { RunUsage } from "./contract.ts";

export interface RateLimit {
  /** When the provider says the limit resets (ms since the epoch), or null: then drover backs off. */
  resetsAt: number | null;
  message: string;
}

export interface OutputReader {
  line(text: string): void;
  usage(): RunUsage | null;
  rateLimit(): RateLimit | null;
}

export function createOutputReader(): OutputReader {
  let claude: RunUsage | null = null; // a result line carries the session's totals: the last one wins
  let codex: RunUsage | null = null; // turn.completed lines carry one turn each: they add up
  let limit: RateLimit | null = null;

  return {
    line(text) {
      const event = _json(text);
      if (!event) {
        if (_LIMIT_TEXT.test(text)) limit ??= { resetsAt: _resetIn(text), message: text.slice(0, 500) };
        return;
      }
      if (event.type === "result") {
        claude = _claudeUsage(event) ?? claude;
        const said = typeof event.result === "string" ? event.result : "";
        if (event.is_error === true && (event.api_error_status === 429 || _LIMIT_TEXT.test(said)))
          limit ??= { resetsAt: _resetIn(said), message: said.slice(0, 500) || "HTTP 429" };
      } else if (event.type === "rate_limit_event") {
        const info = _object(event.rate_limit_info);
        if (info && info.status === "rejected") {
          const at = typeof info.resetsAt === "number" ? info.resetsAt * 1000 : null;
          limit = { resetsAt: at, message: `Rate limit ${String(info.rateLimitType ?? "")} reached`.trim() };
        }
      } else if (event.type === "turn.completed") {
        const u = _object(event.usage);
        if (u) codex = _add(codex, _codexUsage(u));
      } else if (event.type === "error" || event.type === "turn.failed") {
        const message = String(event.message ?? _object(event.error)?.message ?? "");
        if (_LIMIT_TEXT.test(message) || /\b429\b/.test(message))
          limit ??= { resetsAt: _resetIn(message), message: message.slice(0, 500) };
      }
    },
    usage: () => claude ?? codex,
    rateLimit: () => limit,
  };
}

// --- internal ---

const _LIMIT_TEXT = /usage limit|rate limit|hit your limit|limit reached|too many requests/i;

function _json(text: string): Record<string, unknown> | null {
  if (!text.startsWith("{")) return null;
  try {
    return _object(JSON.parse(text));
  } catch {
    return null;
  }
}

function _object(v: unknown): Record<string, unknown> | null {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

function _n(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : 0;
}

function _claudeUsage(event: Record<string, unknown>): RunUsage | null {
  const u = _object(event.usage);
  if (!u) return null;
  const models = Object.keys(_object(event.modelUsage) ?? {});
  return {
    input_tokens: _n(u.input_tokens) + _n(u.cache_creation_input_tokens),
    output_tokens: _n(u.output_tokens),
    cache_read_tokens: _n(u.cache_read_input_tokens),
    cost_usd: _n(event.total_cost_usd),
    model: models[0] ?? null,
  };
}

function _codexUsage(u: Record<string, unknown>): RunUsage {
  const cached = _n(u.cached_input_tokens);
  return {
    input_tokens: Math.max(0, _n(u.input_tokens) - cached), // OpenAI counts cached tokens inside input_tokens
    output_tokens: _n(u.output_tokens),
    cache_read_tokens: cached,
    cost_usd: 0,
    model: null,
  };
}

function _add(a: RunUsage | null, b: RunUsage): RunUsage {
  if (!a) return b;
  return {
    input_tokens: a.input_tokens + b.input_tokens,
    output_tokens: a.output_tokens + b.output_tokens,
    cache_read_tokens: a.cache_read_tokens + b.cache_read_tokens,
    cost_usd: a.cost_usd + b.cost_usd,
    model: a.model ?? b.model,
  };
}

/** A reset time in the text: `|<epoch s>` (Claude's old result text), or an ISO time. */
function _resetIn(text: string): number | null {
  const epoch = /\|(\d{10})\b/.exec(text)?.[1];
  if (epoch) return Number(epoch) * 1000;
  const isoTime = /\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)/.exec(text)?.[0];
  const ms = isoTime ? Date.parse(isoTime) : Number.NaN;
  return Number.isFinite(ms) ? ms : null;
}
