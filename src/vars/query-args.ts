/**
 * A query string (without its `?`) without every `name` argument. Names are compared decoded, so
 * `api%6Bey` is `apikey` too; every other argument keeps its exact spelling, empty pairs are dropped.
 */
export function queryWithoutArg(query: string, name: string): string {
  if (query === "") return query;
  return query
    .split("&")
    .filter((pair) => {
      if (pair === "") return false;
      const eq = pair.indexOf("=");
      return decodeArgName(eq === -1 ? pair : pair.slice(0, eq)) !== name;
    })
    .join("&");
}

/** A path and query (`/p?a=1`) without every `name` argument; without the `?` when none is left. */
export function uriWithoutArg(uri: string, name: string): string {
  const q = uri.indexOf("?");
  if (q === -1) return uri;
  const kept = queryWithoutArg(uri.slice(q + 1), name);
  return kept === "" ? uri.slice(0, q) : `${uri.slice(0, q)}?${kept}`;
}

function decodeArgName(raw: string): string {
  try {
    return decodeURIComponent(raw.replaceAll("+", " "));
  } catch {
    return raw;
  }
}
