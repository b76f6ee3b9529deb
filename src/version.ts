import { readFileSync } from "node:fs";

/** Read from package.json so `weir version`, the Server header and the Admin API agree. */
export const VERSION: string = (
  JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }
).version;
