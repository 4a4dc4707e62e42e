/**
 * Hono middleware:
 *
 * ```ts
 * import { keywardAuth, type KeywardVariables } from "@keyward/sdk/hono";
 * const app = new Hono<{ Variables: KeywardVariables }>();
 * app.get("/invoices", keywardAuth({ client: kw, permissions: "invoices.read" }), (c) => c.json({ key: c.get("keyward").key_id }));
 * ```
 *
 * The verification is in `c.get("keyward")` (and `c.var.keyward`). Refusals answer like
 * Keyward's forward-auth: 401, 403 or 429 with `{"error": {"code", "message", "verification_code"}}`.
 */
import type { Context, MiddlewareHandler } from "hono";
import type { Verification } from "./types.js";
import { authenticate, splitUrl, type KeywardAuthOptions } from "./auth.js";

export type { KeywardAuthOptions, Verification };

/** The context variables `keywardAuth` sets. */
export type KeywardVariables = { keyward: Verification };

/** Hono middleware that lets a request through only with a key Keyward accepts; sets `c.var.keyward`. */
export function keywardAuth(options: KeywardAuthOptions<Context>): MiddlewareHandler<{ Variables: KeywardVariables }> {
  if (!options?.client) throw new TypeError("keywardAuth: `client` (a Keyward instance) is required");
  return async (c, next) => {
    const url = new URL(c.req.url);
    const { query } = splitUrl(c.req.url.slice(url.origin.length));
    const result = await authenticate(options, c, {
      header: (name) => c.req.header(name) ?? undefined,
      method: c.req.method,
      path: url.pathname,
      query,
      body: () => c.req.text(),
    });
    if (result.ok) {
      c.set("keyward", result.verification);
      await next();
      return;
    }
    const { status, headers, body } = result.refusal;
    return c.json(body, status as 401, headers);
  };
}

export default keywardAuth;
