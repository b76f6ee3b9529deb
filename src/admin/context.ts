import type { IncomingMessage } from "node:http";
import type { AdminRole } from "../config/types.js";

/** One Admin API request, parsed once and passed to every handler. */
export interface AdminContext {
  req: IncomingMessage;
  /** Upper-case HTTP method. */
  method: string;
  query: URLSearchParams;
  /** `/apisix/admin/<resource>/<id>/<sub/path...>`, decoded. */
  resource: string;
  /** undefined when the path has no id segment (or an empty one, as in `/routes/`). */
  id: string | undefined;
  subPath: string[];
  /** The parsed JSON body; undefined when the request had none. */
  body: unknown;
  /** The role of the key the request presented: secrets read decrypted for admin, masked for viewer. */
  role?: AdminRole;
}

/** Splits an Admin API path the way APISIX's split_uri + run() do; undefined outside /apisix/admin/. */
export function parseAdminPath(pathname: string): { resource: string; id?: string; subPath: string[] } | undefined {
  const prefix = "/apisix/admin/";
  if (!pathname.startsWith(prefix)) return undefined;
  const segs = pathname
    .slice(prefix.length)
    .split("/")
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    });
  let [resource = "", id, ...rest] = segs;
  // GET /apisix/admin/schema/plugins/<name> is GET /apisix/admin/plugins/<name>.
  if (resource === "schema" && id === "plugins") [resource = "", id, ...rest] = [id, ...rest];
  return { resource, id: id === "" ? undefined : id, subPath: rest.filter((s) => s !== "") };
}
