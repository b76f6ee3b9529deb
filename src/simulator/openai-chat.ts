import { type Answer, type AnswerEnd, composeAnswer, promptText } from "./answer.js";
import { FILL, jsonReply, type Reply, served, sseData, template } from "./delivery.js";
import { chatTurns, invalid, lastUserText, offeredTools, toolDemand, toolsText } from "./openai.js";
import { chatPromptBlocks } from "./prefix-cache.js";
import { type Exchange, stopList } from "./provider.js";
import { CACHED_TOKENS, TIMINGS } from "./serving-usage.js";
import { BoundedCache, chatPromptTokens, countTokens, tokenPieces } from "./tokens.js";
import { chooseTool, type OfferedTool, sampleArguments } from "./tools.js";

export const FINGERPRINT = "fp_sim0000";
const DONE = "data: [DONE]\n\n";

export const FINISH: Record<AnswerEnd, string> = { complete: "stop", stop_sequence: "stop", max_tokens: "length" };

/** A positive integer cap, or an OpenAI-shaped 400 naming the field. */
export function tokenCap(body: Record<string, unknown>, names: readonly string[]): number | undefined | Reply {
  for (const name of names) {
    const v = body[name];
    if (v === undefined || v === null) continue;
    if (typeof v !== "number" || !Number.isInteger(v)) {
      return invalid(`Invalid type for '${name}': expected an integer.`, name, "invalid_type");
    }
    if (v < 1) {
      return invalid(
        `Invalid '${name}': integer below minimum value. Expected a value >= 1, but got ${v} instead.`,
        name,
        "integer_below_min_value",
      );
    }
    return v;
  }
  return undefined;
}

/** 0 with the serving model off; with it on, a marker the delivery replaces with the engine's count. */
export const cachedTokens = (ex: Exchange): number | string => (ex.serving === null ? 0 : CACHED_TOKENS);

const TIMINGS_FIELD = { timings: TIMINGS };
/** llama.cpp's `timings` field, only in the llamacpp dialect; undefined (nothing to spread or copy) otherwise. */
export const timingsField = (ex: Exchange): { timings: string } | undefined =>
  ex.serving?.timings === true ? TIMINGS_FIELD : undefined;

export function usageObject(prompt: number, completion: number, cached: number | string = 0) {
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: cached, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}

export interface ToolCallAnswer {
  name: string;
  arguments: string;
  pieces: string[];
  tokens: number;
}

const toolCalls = new BoundedCache<string, ToolCallAnswer>(1024);

/** The call the model makes to `tool`, with deterministic arguments, split into tokens for streaming. */
export function toolCallFor(tool: OfferedTool): ToolCallAnswer {
  const args = JSON.stringify(sampleArguments(tool.schema));
  const key = `${tool.name}\u0000${args}`;
  return (
    toolCalls.get(key) ??
    toolCalls.set(key, { name: tool.name, arguments: args, pieces: tokenPieces(args), tokens: countTokens(args) })
  );
}

/** POST /v1/chat/completions */
export function chatCompletions(ex: Exchange): Reply {
  const b = ex.body;
  if (typeof b.model !== "string" || b.model === "") return invalid("you must provide a model parameter");
  if (!Array.isArray(b.messages)) {
    return invalid("Missing required parameter: 'messages'.", "messages", "missing_required_parameter");
  }
  if (b.messages.length === 0) {
    return invalid(
      "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
      "messages",
      "empty_array",
    );
  }
  const stream = b.stream === true;
  if (b.stream_options != null && !stream) {
    return invalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options");
  }
  const cap = tokenCap(b, ["max_completion_tokens", "max_tokens"]);
  if (typeof cap === "object") return cap;

  const turns = chatTurns(b.messages);
  const tools = toolsText(b.tools);
  // Blocks first: they encode the prompt once and prime the counts chatPromptTokens reads.
  const blocks = ex.serving === null ? undefined : chatPromptBlocks(turns, tools, ex.serving.blockTokens);
  const promptTokens = chatPromptTokens(turns) + countTokens(tools);
  const demand = toolDemand(b.tool_choice);
  const tool = chooseTool(offeredTools(b.tools), demand, lastUserText(turns));
  const id = ex.ids.next("chatcmpl-");
  const model = b.model;

  if (tool !== undefined) {
    const call = toolCallFor(tool);
    // OpenAI reports "stop", not "tool_calls", when tool_choice named the function.
    const finish = demand.kind === "named" ? "stop" : "tool_calls";
    const callId = ex.ids.next("call_");
    if (stream) return served(streamToolCall(ex, id, model, promptTokens, call, callId, finish), blocks, "stop");
    const message = {
      role: "assistant",
      content: null,
      tool_calls: [{ id: callId, type: "function", function: { name: call.name, arguments: call.arguments } }],
      refusal: null,
      annotations: [],
    };
    return served(completion(ex, id, model, message, finish, promptTokens, call.tokens), blocks, "stop");
  }

  const answer = composeAnswer({
    prompt: promptText(turns),
    tokens: ex.plan.tokens,
    maxTokens: cap,
    stop: stopList(b.stop),
  });
  const end = answer.end === "max_tokens" ? "length" : "stop";
  if (stream) return served(streamText(ex, id, model, promptTokens, answer), blocks, end);
  const message = { role: "assistant", content: answer.text, refusal: null, annotations: [] };
  return served(completion(ex, id, model, message, FINISH[answer.end], promptTokens, answer.tokens), blocks, end);
}

function completion(
  ex: Exchange,
  id: string,
  model: string,
  message: object,
  finish: string,
  promptTokens: number,
  completionTokens: number,
): Reply {
  const body: Record<string, unknown> = {
    id,
    object: "chat.completion",
    created: ex.now,
    model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: finish }],
    usage: ex.plan.omitUsage ? undefined : usageObject(promptTokens, completionTokens, cachedTokens(ex)),
    service_tier: "default",
    system_fingerprint: FINGERPRINT,
    ...timingsField(ex),
  };
  return jsonReply(200, body, completionTokens, id);
}

/** Chunks of one streamed completion; with include_usage every chunk carries "usage": null, like OpenAI's. */
export class ChunkWriter {
  readonly includeUsage: boolean;
  private readonly base: Record<string, unknown>;

  constructor(ex: Exchange, id: string, model: string, object = "chat.completion.chunk") {
    const options = ex.body.stream_options as { include_usage?: unknown } | undefined;
    this.includeUsage = options?.include_usage === true;
    this.base = { id, object, created: ex.now, model, service_tier: "default", system_fingerprint: FINGERPRINT };
  }

  event(choices: unknown[], usage: unknown = null, extra?: object): string {
    const body = this.includeUsage ? { ...this.base, choices, usage } : { ...this.base, choices };
    return sseData(JSON.stringify(extra === undefined ? body : { ...body, ...extra }));
  }

  /** The chunk with finish_reason; llama.cpp adds its timings to it. */
  finishEvent(ex: Exchange, choices: unknown[]): string {
    return this.event(choices, null, timingsField(ex));
  }

  /** A frame maker for one choice whose FILL holes take each token. */
  frames(choice: object): (fill: string) => string {
    const body = { ...this.base, choices: [choice] };
    const fill = template(this.includeUsage ? { ...body, usage: null } : body);
    return (value) => sseData(fill(value));
  }

  /** The final choice-less usage chunk (when asked for and not omitted) and [DONE]. */
  end(ex: Exchange, promptTokens: number, completionTokens: number): string {
    const usage =
      this.includeUsage && !ex.plan.omitUsage
        ? this.event([], usageObject(promptTokens, completionTokens, cachedTokens(ex)))
        : "";
    return usage + DONE;
  }
}

function streamText(ex: Exchange, id: string, model: string, promptTokens: number, answer: Answer): Reply {
  const w = new ChunkWriter(ex, id, model);
  const head = w.event([
    { index: 0, delta: { role: "assistant", content: "", refusal: null }, logprobs: null, finish_reason: null },
  ]);
  const frame = w.frames({ index: 0, delta: { content: FILL }, logprobs: null, finish_reason: null });
  const frames = answer.pieces.map((p) => frame(JSON.stringify(p)));
  const tail =
    w.finishEvent(ex, [{ index: 0, delta: {}, logprobs: null, finish_reason: FINISH[answer.end] }]) +
    w.end(ex, promptTokens, answer.tokens);
  return { kind: "stream", id, head, frames, tail };
}

function streamToolCall(
  ex: Exchange,
  id: string,
  model: string,
  promptTokens: number,
  call: ToolCallAnswer,
  callId: string,
  finish: string,
): Reply {
  const w = new ChunkWriter(ex, id, model);
  const opening = { index: 0, id: callId, type: "function", function: { name: call.name, arguments: "" } };
  const head = w.event([
    {
      index: 0,
      delta: { role: "assistant", content: null, tool_calls: [opening], refusal: null },
      logprobs: null,
      finish_reason: null,
    },
  ]);
  const frame = w.frames({
    index: 0,
    delta: { tool_calls: [{ index: 0, function: { arguments: FILL } }] },
    logprobs: null,
    finish_reason: null,
  });
  const frames = call.pieces.map((p) => frame(JSON.stringify(p)));
  const tail =
    w.finishEvent(ex, [{ index: 0, delta: {}, logprobs: null, finish_reason: finish }]) +
    w.end(ex, promptTokens, call.tokens);
  return { kind: "stream", id, head, frames, tail };
}
