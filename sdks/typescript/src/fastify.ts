/**
 * Fastify hook (Fastify 4 and 5):
 *
 * ```ts
 * import { keywardAuth } from "@keyward/sdk/fastify";
 * app.get("/invoices", { preHandler: keywardAuth({ client: kw, permissions: "invoices.read" }) },
 *   async (request) => ({ key: request.keyward!.key_id }));
 * ```
 *
 * or for every route of a scope: `app.addHook("preHandler", keywardAuth({ … }))`. Refusals
 * answer like Keyward's forward-auth: 401, 403 or 429 with `{"error": {"code", "message",
 * "verification_code"}}`. A signed request's raw body is read from `request.rawBody` (e.g.
 * the `fastify-raw-body` plugin) or a string body.
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Verification } from "./types.js";
import { authenticate, splitUrl, type KeywardAuthOptions } from "./auth.js";

export type { KeywardAuthOptions, Verification };

declare module "fastify" {
  interface FastifyRequest {
    /** Set by `keywardAuth`: Keyward's answer for the request's key. */
    keyward?: Verification;
  }
}

function bodyText(request: FastifyRequest): string {
  for (const b of [(request as { rawBody?: unknown }).rawBody, request.body]) {
    if (typeof b === "string") return b;
    if (b instanceof Uint8Array) return Buffer.from(b).toString("utf8");
  }
  return "";
}

/** A Fastify `onRequest`/`preHandler` hook that lets a request through only with a key Keyward accepts; sets `request.keyward`. */
export function keywardAuth(options: KeywardAuthOptions<FastifyRequest>): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
  if (!options?.client) throw new TypeError("keywardAuth: `client` (a Keyward instance) is required");
  return async (request, reply) => {
    const { path, query } = splitUrl(request.url);
    const result = await authenticate(options, request, {
      header: (name) => {
        const v = request.headers[name];
        return Array.isArray(v) ? v[0] : v;
      },
      method: request.method,
      path,
      query,
      body: async () => bodyText(request),
    });
    if (result.ok) {
      request.keyward = result.verification;
      return;
    }
    const { status, headers, body } = result.refusal;
    await reply.code(status).headers(headers).send(body);
  };
}

export default keywardAuth;
