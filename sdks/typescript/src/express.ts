/**
 * Express middleware (Express 4 and 5):
 *
 * ```ts
 * import { keywardAuth } from "@keyward/sdk/express";
 * app.get("/invoices", keywardAuth({ client: kw, permissions: "invoices.read" }), (req, res) => {
 *   res.json({ key: req.keyward!.key_id });
 * });
 * ```
 *
 * The key comes from `X-API-Key` or `Authorization: Bearer`; a request signed with the
 * `Biz-Api-*` headers is verified too (its raw body from `req.rawBody`, or `req.body` when a
 * string or Buffer, e.g. under `express.text()` / `express.raw()`). Refusals answer like
 * Keyward's forward-auth: 401 without a valid key, 403 lacking a permission, 429 past a
 * limit, as `{"error": {"code", "message", "verification_code"}}`.
 */
import type { Verification } from "./types.js";
import { authenticate, splitUrl, type KeywardAuthOptions } from "./auth.js";

export type { KeywardAuthOptions, Verification };

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** Set by `keywardAuth`: Keyward's answer for the request's key. */
      keyward?: Verification;
    }
  }
}

/** The parts of Express's request and response the middleware uses. */
export interface ExpressLikeRequest {
  headers: Record<string, string | string[] | undefined>;
  method: string;
  originalUrl?: string;
  url: string;
  body?: unknown;
  rawBody?: unknown;
  keyward?: Verification;
}
export interface ExpressLikeResponse {
  status(code: number): this;
  set(field: string, value: string): this;
  json(body: unknown): unknown;
}
export type ExpressLikeNext = (err?: unknown) => void;

function bodyText(req: ExpressLikeRequest): string {
  for (const b of [req.rawBody, req.body]) {
    if (typeof b === "string") return b;
    if (b instanceof Uint8Array) return Buffer.from(b).toString("utf8");
  }
  return "";
}

/** Express middleware that lets a request through only with a key Keyward accepts; sets `req.keyward`. */
export function keywardAuth<Req extends ExpressLikeRequest = ExpressLikeRequest>(
  options: KeywardAuthOptions<Req>,
): (req: Req, res: ExpressLikeResponse, next: ExpressLikeNext) => Promise<void> {
  if (!options?.client) throw new TypeError("keywardAuth: `client` (a Keyward instance) is required");
  return async (req, res, next) => {
    try {
      const header = (name: string) => {
        const v = req.headers[name];
        return Array.isArray(v) ? v[0] : v;
      };
      const { path, query } = splitUrl(req.originalUrl ?? req.url);
      const result = await authenticate(options, req, { header, method: req.method, path, query, body: async () => bodyText(req) });
      if (result.ok) {
        req.keyward = result.verification;
        next();
        return;
      }
      const { status, headers, body } = result.refusal;
      res.status(status);
      for (const [k, v] of Object.entries(headers)) res.set(k, v);
      res.json(body);
    } catch (err) {
      next(err);
    }
  };
}

export default keywardAuth;
