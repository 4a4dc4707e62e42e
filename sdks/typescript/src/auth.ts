/**
 * The framework-neutral core of the middleware (`@keyward/sdk/express`, `/hono`, `/fastify`):
 * find the credential, verify it with Keyward, and turn a refusal into Keyward's own answer
 * (the status and error body that forward-auth and the gateway give).
 */
import type { Keyward } from "./client.js";
import { permissionQuery } from "./client.js";
import type { Verification } from "./types.js";

export interface KeywardAuthOptions<Req> {
  /** The client that verifies (no management key needed). */
  client: Keyward;
  /** A permission query (`"wallet.read AND tx.create"`) or a list that must all be held. */
  permissions?: string | string[];
  /** A resource scope to check, or a function of the request (e.g. `req => \`wallet:${req.params.id}\``). */
  scope?: string | ((req: Req) => string | undefined);
  /** Only keys of this environment (`test` / `live`) pass; others get 403 `WRONG_ENVIRONMENT`. */
  environment?: string;
  /** Only keys of this workspace pass; others get 401 `NOT_FOUND`. */
  workspaceId?: string;
  /** The client's address, sent so a key's `ip_allowlist` applies (e.g. `req => req.ip`). Not sent by default. */
  ip?: (req: Req) => string | undefined;
  /** Labels this verification is counted under in usage. */
  tags?: string[] | ((req: Req) => string[] | undefined);
  /** Uses of the key's limits and credits this request spends (default 1). */
  cost?: number;
}

/** What the middleware reads from a request. */
export interface IncomingRequest {
  header(name: string): string | undefined;
  method: string;
  path: string;
  query: string;
  body(): Promise<string>;
}

export interface Refusal {
  status: number;
  headers: Record<string, string>;
  body: { error: { code: string; message: string; verification_code?: string } };
}

export type AuthResult = { ok: true; verification: Verification } | { ok: false; refusal: Refusal };

const MESSAGES: Record<string, string> = {
  MALFORMED: "missing or malformed API key: send it in X-API-Key or Authorization: Bearer",
  NOT_FOUND: "unknown API key",
  REVOKED: "the API key was revoked",
  EXPIRED: "the API key has expired",
  PENDING: "the API key is waiting on an approval",
  DISABLED: "the API key is disabled",
  INVALID_SIGNATURE: "the request's signature does not match",
  NONCE_EXPIRED: "the request's nonce is outside the allowed window",
  REPLAYED: "the signed request was already seen",
  IP_NOT_ALLOWED: "the client address is not allowed for this API key",
  INSUFFICIENT_PERMISSIONS: "the API key lacks a permission this route requires",
  WRONG_ENVIRONMENT: "the API key belongs to another environment",
  SUSPENDED: "the API key's workspace is suspended",
  RATE_LIMITED: "rate limit reached",
  USAGE_EXCEEDED: "the API key's credits are spent",
};

const FORBIDDEN = new Set(["IP_NOT_ALLOWED", "INSUFFICIENT_PERMISSIONS", "WRONG_ENVIRONMENT", "SUSPENDED"]);
const LIMITS = new Set(["RATE_LIMITED", "USAGE_EXCEEDED"]);

/** The API key of a request: `X-API-Key`, else `Authorization: Bearer <key>`. */
export function credentialOf(header: (name: string) => string | undefined): string | undefined {
  const x = header("x-api-key")?.trim();
  if (x) return x;
  const auth = header("authorization");
  if (auth) {
    const m = /^bearer\s+(.+)$/i.exec(auth.trim());
    if (m) return m[1]!.trim();
  }
  return undefined;
}

/** The status, headers and error body a refused verification answers with. */
export function refusalFor(v: Pick<Verification, "code" | "ratelimit">): Refusal {
  const code = v.code;
  const status = LIMITS.has(code) ? 429 : FORBIDDEN.has(code) ? 403 : 401;
  const kind = status === 429 ? "rate_limited" : status === 403 ? "forbidden" : "unauthenticated";
  const headers: Record<string, string> = { "x-keyward-code": code };
  if (status === 401) headers["www-authenticate"] = 'Bearer realm="keyward"';
  if (status === 429) {
    let wait = 60;
    if (v.ratelimit) {
      wait = Math.max(1, Math.ceil((v.ratelimit.reset - Date.now()) / 1000));
      headers["ratelimit"] = `"${v.ratelimit.name}";r=${v.ratelimit.remaining};t=${wait}`;
    }
    headers["retry-after"] = String(wait);
  }
  return { status, headers, body: { error: { code: kind, message: MESSAGES[code] ?? "request refused by Keyward", verification_code: code } } };
}

function unavailable(err: unknown): Refusal {
  const detail = err instanceof Error ? err.message : String(err);
  return { status: 503, headers: { "retry-after": "1" }, body: { error: { code: "unavailable", message: `cannot verify the API key: ${detail}` } } };
}

/** Verifies one request as the middleware do. */
export async function authenticate<Req>(opts: KeywardAuthOptions<Req>, req: Req, incoming: IncomingRequest): Promise<AuthResult> {
  const common = {
    permissions: permissionQuery(opts.permissions),
    scope: typeof opts.scope === "function" ? opts.scope(req) : opts.scope,
    environment: opts.environment,
    workspace_id: opts.workspaceId,
    ip: opts.ip?.(req),
    cost: opts.cost,
  };
  const key = credentialOf(incoming.header);
  let verification: Verification;
  try {
    if (key) {
      const tags = typeof opts.tags === "function" ? opts.tags(req) : opts.tags;
      verification = await opts.client.verify({ key, ...common, tags });
    } else if (incoming.header("biz-api-key") && incoming.header("biz-api-signature")) {
      verification = await opts.client.verifySigned({
        method: incoming.method,
        path: incoming.path,
        query: incoming.query,
        body: await incoming.body(),
        headers: {
          "Biz-Api-Key": incoming.header("biz-api-key"),
          "Biz-Api-Nonce": incoming.header("biz-api-nonce"),
          "Biz-Api-Signature": incoming.header("biz-api-signature"),
        },
        ...common,
      });
    } else {
      return { ok: false, refusal: refusalFor({ code: "MALFORMED" }) };
    }
  } catch (err) {
    const e = err as { status?: number; field?: string; message?: string };
    if (e.status === 400) {
      if (e.field === "key" || e.field === "headers" || e.field?.startsWith("headers.")) {
        // A credential Keyward refuses as input (e.g. far too long): the caller's fault.
        return { ok: false, refusal: refusalFor({ code: "MALFORMED" }) };
      }
      // The middleware's own settings are wrong (a bad workspace id, scope, tag, …).
      return {
        ok: false,
        refusal: { status: 500, headers: {}, body: { error: { code: "internal", message: `Keyward refused the verification request: ${e.message}` } } },
      };
    }
    return { ok: false, refusal: unavailable(err) };
  }
  if (verification.valid) return { ok: true, verification };
  return { ok: false, refusal: refusalFor(verification) };
}

/** Splits a URL (`/a/b?x=1`) into path and raw query. */
export function splitUrl(url: string): { path: string; query: string } {
  const i = url.indexOf("?");
  return i < 0 ? { path: url, query: "" } : { path: url.slice(0, i), query: url.slice(i + 1) };
}
