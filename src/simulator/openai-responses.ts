import { composeAnswer, promptText } from "./answer.js";
import { FILL, jsonReply, type Reply, served, sseEvent, template } from "./delivery.js";
import { contentText, invalid, lastUserText, offeredTools, toolDemand, toolsText } from "./openai.js";
import { cachedTokens, toolCallFor } from "./openai-chat.js";
import { chatPromptBlocks } from "./prefix-cache.js";
import type { Exchange } from "./provider.js";
import { type ChatTurn, chatPromptTokens, countTokens } from "./tokens.js";
import { chooseTool } from "./tools.js";

/** The Responses API refuses smaller caps. */
const MIN_OUTPUT_TOKENS = 16;

function inputTurns(b: Record<string, unknown>): ChatTurn[] | undefined {
  const turns: ChatTurn[] = [];
  if (typeof b.instructions === "string") turns.push({ role: "developer", text: b.instructions });
  if (typeof b.input === "string") {
    turns.push({ role: "user", text: b.input });
    return turns;
  }
  if (!Array.isArray(b.input)) return undefined;
  for (const raw of b.input) {
    if (typeof raw !== "object" || raw === null) continue;
    const item = raw as { type?: unknown; role?: unknown; content?: unknown; output?: unknown; name?: unknown };
    if (item.type === "function_call_output") {
      turns.push({ role: "tool", text: typeof item.output === "string" ? item.output : JSON.stringify(item.output) });
    } else if (item.type === "function_call") {
      const args = (raw as { arguments?: unknown }).arguments;
      turns.push({ role: "assistant", text: `${String(item.name ?? "")}${String(args ?? "")}` });
    } else if (typeof item.role === "string") {
      turns.push({ role: item.role, text: contentText(item.content) });
    }
  }
  return turns;
}

interface Usage {
  input_tokens: number;
  input_tokens_details: { cached_tokens: number | string };
  output_tokens: number;
  output_tokens_details: { reasoning_tokens: number };
  total_tokens: number;
}

const usageOf = (input: number, output: number, cached: number | string): Usage => ({
  input_tokens: input,
  input_tokens_details: { cached_tokens: cached },
  output_tokens: output,
  output_tokens_details: { reasoning_tokens: 0 },
  total_tokens: input + output,
});

/** POST /v1/responses */
export function responses(ex: Exchange): Reply {
  const b = ex.body;
  if (typeof b.model !== "string" || b.model === "") {
    return invalid("Missing required parameter: 'model'.", "model", "missing_required_parameter");
  }
  const turns = inputTurns(b);
  if (turns === undefined) {
    return invalid("Missing required parameter: 'input'.", "input", "missing_required_parameter");
  }
  const cap = b.max_output_tokens;
  if (
    cap !== undefined &&
    cap !== null &&
    (typeof cap !== "number" || !Number.isInteger(cap) || cap < MIN_OUTPUT_TOKENS)
  ) {
    return invalid(
      `Invalid 'max_output_tokens': integer below minimum value. Expected a value >= ${MIN_OUTPUT_TOKENS}, but got ${String(cap)} instead.`,
      "max_output_tokens",
      "integer_below_min_value",
    );
  }
  const model = b.model;
  const id = ex.ids.next("resp_");
  const tools = toolsText(b.tools);
  const blocks = ex.serving === null ? undefined : chatPromptBlocks(turns, tools, ex.serving.blockTokens);
  const inputTokens = chatPromptTokens(turns) + countTokens(tools);
  const tool = chooseTool(offeredTools(b.tools), toolDemand(b.tool_choice), lastUserText(turns));
  const shell = (status: string, output: unknown[], usage: Usage | null, incomplete: boolean) => ({
    id,
    object: "response",
    created_at: ex.now,
    status,
    background: false,
    error: null,
    incomplete_details: incomplete ? { reason: "max_output_tokens" } : null,
    instructions: b.instructions ?? null,
    max_output_tokens: cap ?? null,
    max_tool_calls: null,
    model,
    output,
    parallel_tool_calls: b.parallel_tool_calls ?? true,
    previous_response_id: b.previous_response_id ?? null,
    reasoning: { effort: null, summary: null },
    service_tier: "default",
    store: b.store ?? true,
    temperature: b.temperature ?? 1,
    text: b.text ?? { format: { type: "text" } },
    tool_choice: b.tool_choice ?? "auto",
    tools: b.tools ?? [],
    top_p: b.top_p ?? 1,
    truncation: b.truncation ?? "disabled",
    usage,
    user: b.user ?? null,
    metadata: b.metadata ?? {},
  });

  if (tool !== undefined) {
    const call = toolCallFor(tool);
    const item = {
      id: ex.ids.next("fc_"),
      type: "function_call",
      status: "completed",
      arguments: call.arguments,
      call_id: ex.ids.next("call_"),
      name: call.name,
    };
    const usage = ex.plan.omitUsage ? null : usageOf(inputTokens, call.tokens, cachedTokens(ex));
    const done = shell("completed", [item], usage, false);
    if (b.stream !== true) return served(jsonReply(200, done, call.tokens, id), blocks, "stop");
    const events = new EventSequence();
    const head =
      events.next("response.created", { response: shell("in_progress", [], null, false) }) +
      events.next("response.in_progress", { response: shell("in_progress", [], null, false) }) +
      events.next("response.output_item.added", {
        output_index: 0,
        item: { ...item, status: "in_progress", arguments: "" },
      });
    const frame = events.frames("response.function_call_arguments.delta", {
      item_id: item.id,
      output_index: 0,
      delta: FILL,
    });
    const frames = call.pieces.map((p) => frame(p));
    const tail =
      events.next("response.function_call_arguments.done", {
        item_id: item.id,
        output_index: 0,
        name: call.name,
        arguments: call.arguments,
      }) +
      events.next("response.output_item.done", { output_index: 0, item }) +
      events.next("response.completed", { response: done });
    return served({ kind: "stream", id, head, frames, tail }, blocks, "stop");
  }

  const answer = composeAnswer({ prompt: promptText(turns), tokens: ex.plan.tokens, maxTokens: cap ?? undefined });
  const incomplete = answer.end === "max_tokens";
  const itemId = ex.ids.next("msg_");
  const part = { type: "output_text", annotations: [], logprobs: [], text: answer.text };
  const message = {
    id: itemId,
    type: "message",
    status: incomplete ? "incomplete" : "completed",
    content: [part],
    role: "assistant",
  };
  const usage = ex.plan.omitUsage ? null : usageOf(inputTokens, answer.tokens, cachedTokens(ex));
  const done = shell(incomplete ? "incomplete" : "completed", [message], usage, incomplete);
  const end = incomplete ? "length" : "stop";
  if (b.stream !== true) return served(jsonReply(200, done, answer.tokens, id), blocks, end);

  const events = new EventSequence();
  const at = { item_id: itemId, output_index: 0, content_index: 0 };
  const head =
    events.next("response.created", { response: shell("in_progress", [], null, false) }) +
    events.next("response.in_progress", { response: shell("in_progress", [], null, false) }) +
    events.next("response.output_item.added", {
      output_index: 0,
      item: { ...message, status: "in_progress", content: [] },
    }) +
    events.next("response.content_part.added", { ...at, part: { ...part, text: "" } });
  const frame = events.frames("response.output_text.delta", { ...at, delta: FILL, logprobs: [] });
  const frames = answer.pieces.map((p) => frame(p));
  const tail =
    events.next("response.output_text.done", { ...at, text: answer.text, logprobs: [] }) +
    events.next("response.content_part.done", { ...at, part }) +
    events.next("response.output_item.done", { output_index: 0, item: message }) +
    events.next(incomplete ? "response.incomplete" : "response.completed", { response: done });
  return served({ kind: "stream", id, head, frames, tail }, blocks, end);
}

/** Responses events carry a sequence_number that counts every event of the stream. */
class EventSequence {
  private n = 0;

  next(type: string, fields: object): string {
    return sseEvent(type, JSON.stringify({ type, sequence_number: this.n++, ...fields }));
  }

  /** Token events: each call takes the next sequence number and fills the FILL hole with the token text. */
  frames(type: string, fields: object): (text: string) => string {
    const fill = template({ type, sequence_number: FILL, ...fields });
    return (text) => sseEvent(type, fill(String(this.n++), JSON.stringify(text)));
  }
}
