import type { IncomingHttpHeaders } from "node:http";

/**
 * Sit-outs (cooldowns) of AI instances, as LiteLLM's router and Envoy's outlier ejection have them: an
 * instance that said "retry after N seconds" (a 429 or 503 with `Retry-After`) or that failed N times in a
 * row leaves the pick of every balancer until its time is up. The state belongs to the deployment (provider,
 * endpoint, credentials, model), not to one route or config revision, so it is kept across recompiles by
 * that identity (PluginScope.keep) and shared by every route sending to the same deployment, as the
 * provider's own rate limits are.
 */

/** Why an instance sits out: the provider's rate limit (429), its overload (503/529), or its failures. */
export type CooldownReason = "rate_limited" | "overloaded" | "failures";

/** ai-proxy-multi's `cooldown`: after `failures` failed attempts in a row, sit out `durationMs`. */
export interface CooldownPolicy {
  readonly failures: number;
  readonly durationMs: number;
}

/** A provider's Retry-After beyond this is a misconfiguration or garbage, not a plan: sit out an hour at most. */
export const MAX_RETRY_AFTER_MS = 3_600_000;

/** One deployment's sit-out, read by every pick; times are performance.now() milliseconds. */
export class InstanceCooldown {
  /** Until when the instance sits out; 0 when it does not (the one field the common pick reads). */
  until = 0;
  reason: CooldownReason = "failures";
  /** Failed attempts in a row (connect errors, timeouts, 5xx, streams the instance broke). */
  failures = 0;

  /** Whether the instance sits out at `now`; an expired sit-out is cleared. */
  coolingAt(now: number): boolean {
    if (this.until > now) return true;
    this.until = 0;
    return false;
  }

  /**
   * Sits out for `ms` from `now` (a sit-out already running is only ever extended). True when this starts
   * one, i.e. the instance was in the rotation: what the sit-out counter counts.
   */
  sitOut(ms: number, reason: CooldownReason, now: number): boolean {
    const fresh = !this.coolingAt(now);
    const until = now + ms;
    if (until > this.until) {
      this.until = until;
      this.reason = reason;
    }
    this.failures = 0;
    return fresh;
  }

  /**
   * The instance answered `status`: a sit-out when it asked for one (429/503/529 with a Retry-After), a
   * failure for other 5xx, a clean slate for anything else but 429. Returns the reason of a sit-out this
   * starts, for the counter.
   */
  answered(
    status: number,
    headers: IncomingHttpHeaders,
    policy: CooldownPolicy | undefined,
    now: number,
  ): CooldownReason | undefined {
    if (status < 429) {
      if (this.failures !== 0) this.failures = 0;
      return undefined;
    }
    if (status === 429 || status === 503 || status === 529) {
      const ms = retryAfterMs(headers, Date.now());
      if (ms !== undefined && ms > 0) {
        const reason = status === 429 ? "rate_limited" : "overloaded";
        return this.sitOut(ms, reason, now) ? reason : undefined;
      }
    }
    if (status >= 500) return this.failed(policy, now);
    if (status !== 429 && this.failures !== 0) this.failures = 0;
    return undefined;
  }

  /** One more failure in a row; with a policy, the one that reaches its count starts a sit-out. */
  failed(policy: CooldownPolicy | undefined, now: number): CooldownReason | undefined {
    if (policy === undefined) return undefined;
    if (++this.failures < policy.failures) return undefined;
    return this.sitOut(policy.durationMs, "failures", now) ? "failures" : undefined;
  }
}

const DELAY_SECONDS = /^\d+(?:\.\d+)?$/;
/**
 * The three HTTP-date formats RFC 9110 §5.6.7 makes recipients accept (IMF-fixdate, RFC 850, asctime).
 * Checked before Date.parse, which takes nearly anything ("Foo 12" is a date in 2001).
 */
const HTTP_DATE =
  /^(?:[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT|[A-Za-z]{6,9}, \d{2}-[A-Za-z]{3}-\d{2} \d{2}:\d{2}:\d{2} GMT|[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d{2}:\d{2}:\d{2} \d{4})$/;
const ANTHROPIC_LIMITS = ["requests", "tokens", "input-tokens", "output-tokens"] as const;

/**
 * How long a 429/503 answer asks the client to wait, in ms, or undefined when it does not say in a form
 * Weir trusts. Read in order: `retry-after-ms` (OpenAI, Azure), `retry-after` as delay-seconds or an
 * HTTP-date (RFC 9110 §10.2.3), then Anthropic's `anthropic-ratelimit-<limit>-reset` of every limit whose
 * remaining is 0. Capped at MAX_RETRY_AFTER_MS; a date in the past is 0.
 */
export function retryAfterMs(headers: IncomingHttpHeaders, nowEpochMs: number): number | undefined {
  const ms = header(headers, "retry-after-ms");
  if (ms !== undefined && DELAY_SECONDS.test(ms)) return capped(Number(ms));
  const after = header(headers, "retry-after");
  if (after !== undefined) {
    if (DELAY_SECONDS.test(after)) return capped(Number(after) * 1000);
    if (HTTP_DATE.test(after)) {
      // asctime carries no zone; RFC 9110 says it is UTC, Date.parse would read local time.
      const at = Date.parse(after.includes("GMT") ? after : `${after} GMT`);
      if (Number.isFinite(at)) return capped(at - nowEpochMs);
    }
  }
  let reset: number | undefined;
  for (const limit of ANTHROPIC_LIMITS) {
    if (header(headers, `anthropic-ratelimit-${limit}-remaining`) !== "0") continue;
    const at = Date.parse(header(headers, `anthropic-ratelimit-${limit}-reset`) ?? "");
    if (Number.isFinite(at) && (reset === undefined || at > reset)) reset = at;
  }
  return reset === undefined ? undefined : capped(reset - nowEpochMs);
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  const one = Array.isArray(v) ? v[0] : v;
  return one === undefined ? undefined : one.trim();
}

function capped(ms: number): number | undefined {
  if (!Number.isFinite(ms)) return undefined;
  return Math.min(Math.max(0, Math.ceil(ms)), MAX_RETRY_AFTER_MS);
}

/** Retry-After for Weir's own answer: whole seconds until `until`, at least 1 (0 would invite a busy loop). */
export function retryAfterSeconds(until: number, now: number): string {
  return String(Math.max(1, Math.ceil((until - now) / 1000)));
}
