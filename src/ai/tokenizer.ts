/**
 * gpt-tokenizer (o200k_base) costs ~68 MB of RSS once loaded, so it is loaded the first time a provider
 * answers without usage, not when the gateway starts: most providers report usage and never need it.
 */
let count: ((text: string) => number) | undefined;
let loading: Promise<void> | undefined;

export function tokenizerReady(): boolean {
  return count !== undefined;
}

export function loadTokenizer(): Promise<void> {
  loading ??= import("gpt-tokenizer").then(
    (m) => {
      count = m.countTokens;
    },
    () => {
      // Unavailable tokenizer: countTokens falls back to the ~4 characters per token rule of thumb.
    },
  );
  return loading;
}

export function countTokens(text: string): number {
  if (text === "") return 0;
  return count !== undefined ? count(text) : Math.ceil(text.length / 4);
}
