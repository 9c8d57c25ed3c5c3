/**
 * @module What a run's own output says: its token usage and cost, and whether the provider refused it for a rate
 * limit (and until when). Read line by line from Claude Code's stream-json (`result`, `rate_limit_event`) and
 * Codex's `--json` events (`turn.completed` usage, `turn.failed`); a `command` agent may print either shape. As
 * measured with the real CLIs: Claude gives the reset as `rate_limit_event.resetsAt` (a subscription's limit) or
 * not at all (an API key's 429: `api_error_status` 429); Codex only in its text, "try again at 11:49 PM" or
 * "… at Nov 30th, 2026 2:50 AM", in the run's time zone (runs of the codex preset get `TZ=UTC`). A bare Codex
 * `error` line may be a retry that then succeeds: only `turn.failed` ends a turn. Plain text is never read as a
 * limit: an agent's own words may well be about rate limits.
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

/** `now` (ms) places a reset time given without its day ("11:49 PM": today, or tomorrow once past). */
export function createOutputReader(now: () => number = Date.now): OutputReader {
  let claude: RunUsage | null = null; // a result line carries the session's totals: the last one wins
  let codex: RunUsage | null = null; // turn.completed lines carry one turn each: they add up
  let limit: RateLimit | null = null;

  return {
    line(text) {
      // only what the client itself says counts: an agent's own text may well talk about rate limits
      const event = _json(text);
      if (!event) return;
      if (event.type === "result") {
        claude = _claudeUsage(event) ?? claude;
        const said = typeof event.result === "string" ? event.result : "";
        const refused = event.api_error_status === 429 || event.api_error === "usage_limit_reached";
        if (event.is_error === true && refused)
          limit ??= { resetsAt: _resetIn(said, now()), message: said.slice(0, 500) || "HTTP 429" };
      } else if (event.type === "rate_limit_event") {
        const info = _object(event.rate_limit_info);
        if (info && info.status === "rejected") {
          const at = typeof info.resetsAt === "number" ? _plausible(info.resetsAt * 1000, now()) : null;
          limit = { resetsAt: at, message: `Rate limit ${String(info.rateLimitType ?? "")} reached`.trim() };
        }
      } else if (event.type === "turn.completed") {
        const u = _object(event.usage);
        if (u) codex = _add(codex, _codexUsage(u));
      } else if (event.type === "turn.failed") {
        const message = String(_object(event.error)?.message ?? "");
        if (_LIMIT_TEXT.test(message) || /\b429\b/.test(message))
          limit ??= { resetsAt: _resetIn(message, now()), message: message.slice(0, 500) };
      }
    },
    usage: () => claude ?? codex,
    rateLimit: () => limit,
  };
}

// --- internal ---

const _LIMIT_TEXT = /usage limit|rate limit|limit reached|too many requests/i;

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

/** What `usage.report` takes: whole tokens up to 10^12 (an agent's output may say anything). */
const _MAX_TOKENS = 1e12;

function _n(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? Math.min(Math.floor(v), _MAX_TOKENS) : 0;
}

/** A model's name as `usage.report` takes it: longer, the whole report would be refused. */
const _MAX_MODEL = 100;

/** Dollars up to 10^9, as `usage.report` takes them. */
function _usd(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? Math.min(v, 1e9) : 0;
}

function _claudeUsage(event: Record<string, unknown>): RunUsage | null {
  const u = _object(event.usage);
  if (!u) return null;
  const models = Object.keys(_object(event.modelUsage) ?? {});
  return {
    input_tokens: _n(u.input_tokens) + _n(u.cache_creation_input_tokens),
    output_tokens: _n(u.output_tokens),
    cache_read_tokens: _n(u.cache_read_input_tokens),
    cost_usd: _usd(event.total_cost_usd),
    model: models[0]?.slice(0, _MAX_MODEL) ?? null,
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
  const sum = (x: number, y: number) => Math.min(x + y, _MAX_TOKENS);
  return {
    input_tokens: sum(a.input_tokens, b.input_tokens),
    output_tokens: sum(a.output_tokens, b.output_tokens),
    cache_read_tokens: sum(a.cache_read_tokens, b.cache_read_tokens),
    cost_usd: _usd(a.cost_usd + b.cost_usd),
    model: a.model ?? b.model,
  };
}

/**
 * A reset time in the text: `|<epoch s>` (Claude's old result text), an ISO time, or Codex's "try again at
 * [Nov 30th, 2026 ]2:50 AM" (UTC: the codex preset runs with `TZ=UTC`).
 */
function _resetIn(text: string, now: number): number | null {
  const at = _resetTime(text, now);
  return at === null ? null : _plausible(at, now);
}

/** A reset time drover will wait for: within a month from now (else it backs off instead). */
function _plausible(ms: number, now: number): number | null {
  return Number.isFinite(ms) && ms > now - 86_400_000 && ms < now + 31 * 86_400_000 ? ms : null;
}

function _resetTime(text: string, now: number): number | null {
  const epoch = /\|(\d{10})\b/.exec(text)?.[1];
  if (epoch) return Number(epoch) * 1000;
  const isoTime = /\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)/.exec(text)?.[0];
  if (isoTime && Number.isFinite(Date.parse(isoTime))) return Date.parse(isoTime);
  const at = /try again at (?:([A-Z][a-z]{2}) (\d{1,2})(?:st|nd|rd|th), (\d{4}) )?(\d{1,2}):(\d\d) ([AP]M)/.exec(text);
  if (!at) return null;
  const [, month, day, year, hour, minute, half] = at;
  const h = (Number(hour) % 12) + (half === "PM" ? 12 : 0);
  if (month) {
    const m = _MONTHS.indexOf(month);
    return m < 0 ? null : Date.UTC(Number(year), m, Number(day), h, Number(minute));
  }
  const today = new Date(now);
  const sameDay = Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate(), h, Number(minute));
  return sameDay > now ? sameDay : sameDay + 86_400_000;
}

const _MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
