// undici's Pool module on its own (see upstream/pool.ts for why it is imported by path).
declare module "undici/lib/dispatcher/pool.js" {
  import type { Pool } from "undici";

  const PoolClass: typeof Pool;
  export default PoolClass;
}
