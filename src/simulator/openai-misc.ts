import { type Answer, composeAnswer, hashText, seededRandom } from "./answer.js";
import { FILL, jsonReply, type Reply, served } from "./delivery.js";
import { invalid } from "./openai.js";
import { ChunkWriter, cachedTokens, FINGERPRINT, FINISH, timingsField, tokenCap } from "./openai-chat.js";
import { textPromptBlocks } from "./prefix-cache.js";
import { type Exchange, stopList } from "./provider.js";
import { BoundedCache, countTokens } from "./tokens.js";

/** Legacy completions default to 16 tokens when max_tokens is absent. */
const LEGACY_DEFAULT_MAX_TOKENS = 16;

/** POST /v1/completions (legacy text completions): one choice per prompt string. */
export function completions(ex: Exchange): Reply {
  const b = ex.body;
  if (typeof b.model !== "string" || b.model === "") return invalid("you must provide a model parameter");
  const prompts = typeof b.prompt === "string" ? [b.prompt] : Array.isArray(b.prompt) ? b.prompt : undefined;
  if (prompts === undefined || prompts.length === 0 || !prompts.every((p) => typeof p === "string")) {
    return invalid("Missing required parameter: 'prompt' (a string or a list of strings).", "prompt");
  }
  const cap = tokenCap(b, ["max_tokens"]);
  if (typeof cap === "object") return cap;
  const stop = stopList(b.stop);
  const echo = b.echo === true;
  const answers: Answer[] = (prompts as string[]).map((prompt) =>
    composeAnswer({ prompt, tokens: ex.plan.tokens, maxTokens: cap ?? LEGACY_DEFAULT_MAX_TOKENS, stop }),
  );
  const blocks = ex.serving === null ? undefined : textPromptBlocks(prompts as string[], ex.serving.blockTokens);
  const promptTokens = (prompts as string[]).reduce((n, p) => n + countTokens(p), 0);
  const completionTokens = answers.reduce((n, a) => n + a.tokens, 0);
  const id = ex.ids.next("cmpl-");
  const end = answers.some((a) => a.end === "max_tokens") ? "length" : "stop";

  if (b.stream === true) {
    const w = new ChunkWriter(ex, id, b.model, "text_completion");
    const frames: string[] = [];
    let tail = "";
    answers.forEach((a, index) => {
      const frame = w.frames({ text: FILL, index, logprobs: null, finish_reason: null });
      if (echo) frames.push(frame(JSON.stringify(prompts[index])));
      for (const piece of a.pieces) frames.push(frame(JSON.stringify(piece)));
      const choice = [{ text: "", index, logprobs: null, finish_reason: FINISH[a.end] }];
      tail += index === answers.length - 1 ? w.finishEvent(ex, choice) : w.event(choice);
    });
    const reply: Reply = {
      kind: "stream",
      id,
      head: "",
      frames,
      tail: tail + w.end(ex, promptTokens, completionTokens),
    };
    return served(reply, blocks, end);
  }
  const body = {
    id,
    object: "text_completion",
    created: ex.now,
    model: b.model,
    system_fingerprint: FINGERPRINT,
    choices: answers.map((a, index) => ({
      text: echo ? prompts[index] + a.text : a.text,
      index,
      logprobs: null,
      finish_reason: FINISH[a.end],
    })),
    usage: ex.plan.omitUsage
      ? undefined
      : {
          prompt_tokens: promptTokens,
          completion_tokens: completionTokens,
          total_tokens: promptTokens + completionTokens,
          // vLLM's shape when it reports prefix-cache hits; OpenAI's legacy endpoint has no details.
          ...(ex.serving === null ? {} : { prompt_tokens_details: { cached_tokens: cachedTokens(ex) } }),
        },
    ...timingsField(ex),
  };
  return served(jsonReply(200, body, completionTokens, id), blocks, end);
}

const embeddingCache = new BoundedCache<string, Float32Array>(2048);

/** A unit vector chosen by the input's hash: equal inputs embed equally, different ones almost never do. */
export function embeddingOf(input: string, dimensions: number): Float32Array {
  const key = `${dimensions}|${input}`;
  const cached = embeddingCache.get(key);
  if (cached !== undefined) return cached;
  const random = seededRandom(hashText(input));
  const v = new Float32Array(dimensions);
  let norm = 0;
  for (let i = 0; i < dimensions; i++) {
    v[i] = random() * 2 - 1;
    norm += v[i]! * v[i]!;
  }
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < dimensions; i++) v[i] = v[i]! / norm;
  return embeddingCache.set(key, v);
}

/** POST /v1/embeddings: float or base64 (the openai SDK asks for base64 unless told otherwise). */
export function embeddings(ex: Exchange): Reply {
  const b = ex.body;
  if (typeof b.model !== "string" || b.model === "") return invalid("you must provide a model parameter");
  const inputs = embeddingInputs(b.input);
  if (inputs === undefined) {
    return invalid("'input' must be a string, a list of strings, or a list of token lists.", "input");
  }
  const fallback = b.model.includes("large") ? 3072 : 1536;
  const dimensions = b.dimensions ?? fallback;
  if (typeof dimensions !== "number" || !Number.isInteger(dimensions) || dimensions < 1 || dimensions > fallback) {
    return invalid(`Invalid 'dimensions': must be an integer 1..${fallback}.`, "dimensions");
  }
  const format = b.encoding_format ?? "float";
  if (format !== "float" && format !== "base64") {
    return invalid("Invalid 'encoding_format': expected 'float' or 'base64'.", "encoding_format");
  }
  let promptTokens = 0;
  const data = inputs.map((input, index) => {
    const text = typeof input === "string" ? input : input.join(",");
    promptTokens += typeof input === "string" ? countTokens(input) : input.length;
    const v = embeddingOf(text, dimensions);
    const embedding =
      format === "base64" ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") : Array.from(v);
    return { object: "embedding", index, embedding };
  });
  return jsonReply(200, {
    object: "list",
    data,
    model: b.model,
    usage: ex.plan.omitUsage ? undefined : { prompt_tokens: promptTokens, total_tokens: promptTokens },
  });
}

function embeddingInputs(input: unknown): (string | number[])[] | undefined {
  if (typeof input === "string") return [input];
  if (!Array.isArray(input) || input.length === 0) return undefined;
  if (input.every((i) => typeof i === "number")) return [input as number[]];
  if (input.every((i) => typeof i === "string" || (Array.isArray(i) && i.every((n) => typeof n === "number")))) {
    return input as (string | number[])[];
  }
  return undefined;
}

const MODEL_CREATED = 1_700_000_000;

/** GET /v1/models */
export function listModels(ex: Exchange): Reply {
  return jsonReply(200, {
    object: "list",
    data: ex.models.map((id) => ({ id, object: "model", created: MODEL_CREATED, owned_by: "weir-llm-sim" })),
  });
}

/** GET /v1/models/{id}: any id is "available", since the simulator answers for any model name. */
export function getModel(ex: Exchange): Reply {
  const id = decodeURIComponent(ex.path.slice("/v1/models/".length));
  return jsonReply(200, { id, object: "model", created: MODEL_CREATED, owned_by: "weir-llm-sim" });
}
