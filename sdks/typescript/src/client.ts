import { randomUUID } from "node:crypto";
import type { operations } from "./openapi.js";
import { KeywardConnectionError, KeywardError, KeywardTimeoutError } from "./errors.js";
import type * as T from "./types.js";

export const VERSION = "0.1.0";

type Query<Op extends keyof operations> = operations[Op]["parameters"] extends { query?: infer Q } ? NonNullable<Q> : never;

export type ListKeysParams = Query<"list_keys">;
export type UsageParams = Query<"key_usage">;
export type ListDeliveriesParams = Query<"list_deliveries">;

export interface KeywardOptions {
  /** Where Keyward listens, e.g. `https://keys.example.com`. Default: `$KEYWARD_URL`, else `http://127.0.0.1:5399`. */
  baseUrl?: string;
  /** A management key (`kw_mk_…`) or session token for the management API. Default: `$KEYWARD_MANAGEMENT_KEY`. Verification needs none. */
  managementKey?: string;
  /** Sent as `Keyward-Verify-Token` on verifications (servers run with `--verify-token`, or a workspace's `kw_vt_…` token). */
  verifyToken?: string;
  /** Binds every verification to this workspace (a key of another answers `NOT_FOUND`); a call's own `workspace_id` wins. */
  workspaceId?: string;
  /** Binds every verification to this environment (`test` or `live`; another's key answers `WRONG_ENVIRONMENT`). */
  environment?: string;
  /** Time allowed for one attempt, in milliseconds (default 10,000). */
  timeoutMs?: number;
  /** Retries of idempotent calls after a connection error, a time-out, 408, 429, 500, 502, 503 or 504 (default 2). */
  maxRetries?: number;
  /** Extra headers on every request. */
  headers?: Record<string, string>;
  /** A `fetch` of your own (tests, proxies); default the global one. */
  fetch?: typeof globalThis.fetch;
}

/** Per-call options, the last argument of every method. */
export interface RequestOptions {
  /** Overrides the client's `timeoutMs` for this call. */
  timeoutMs?: number;
  /** Overrides the client's `maxRetries` for this call. */
  maxRetries?: number;
  /** For creates and rotations: a retry with the same key returns the first answer (and the same `secret`). Generated when left out. */
  idempotencyKey?: string;
  /** Aborts the call. */
  signal?: AbortSignal;
  /** Extra headers for this call. */
  headers?: Record<string, string>;
}

/** `permissions` may be a query string (`"a AND (b OR c)"`) or a list that must all be held. */
export type VerifyParams = Omit<T.VerifyKeyRequest, "permissions"> & { permissions?: string | string[] | null };
export type VerifySignedParams = Omit<T.VerifySignedRequest, "permissions" | "headers"> & {
  permissions?: string | string[] | null;
  /** The request's headers: at least `Biz-Api-Key`, `Biz-Api-Nonce`, `Biz-Api-Signature` (any case); others are ignored. */
  headers: Record<string, string | string[] | undefined> | { get(name: string): string | null };
};

interface Call {
  method: "GET" | "POST" | "PATCH" | "PUT" | "DELETE";
  path: string;
  query?: Record<string, unknown> | undefined;
  body?: unknown;
  /** Safe to send twice. */
  idempotent: boolean;
  idempotencyKey?: string | undefined;
  auth: "management" | "verify";
}

const RETRY_STATUSES = new Set([408, 429, 500, 502, 503, 504]);
/** @internal Retries after a transient failure, unless `maxRetries` says otherwise. */
export const DEFAULT_MAX_RETRIES = 2;
/** A longer `Retry-After` is not waited for: the answer is returned (thrown) as it is. */
const MAX_RETRY_AFTER_MS = 60_000;
const SIGNATURE_HEADER_NAMES = ["biz-api-key", "biz-api-nonce", "biz-api-signature"];

function env(name: string): string | undefined {
  return typeof process !== "undefined" ? process.env?.[name] || undefined : undefined;
}

function seg(value: string): string {
  return encodeURIComponent(value);
}

export function permissionQuery(p: string | string[] | null | undefined): string | undefined {
  if (p === null || p === undefined) return undefined;
  if (typeof p === "string") return p;
  if (p.length === 0) return undefined;
  return p.map((x) => (/\s/.test(x.trim()) ? `(${x})` : x)).join(" AND ");
}

/** @internal */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  });
}

/**
 * The Keyward client.
 *
 * ```ts
 * const kw = new Keyward({ baseUrl: "http://127.0.0.1:5399", managementKey: process.env.KEYWARD_MANAGEMENT_KEY });
 * const key = await kw.keys.create({ name: "billing", environment: "live", permissions: ["invoices.read"] });
 * const v = await kw.verify({ key: key.secret, permissions: "invoices.read" });   // v.valid, v.code, v.key_id
 * ```
 */
export class Keyward {
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly maxRetries: number;
  readonly #managementKey: string | undefined;
  readonly #verifyToken: string | undefined;
  readonly #workspaceId: string | undefined;
  readonly #environment: string | undefined;
  readonly #headers: Record<string, string>;
  readonly #fetch: typeof globalThis.fetch;

  readonly keys: Keys;
  readonly roles: Roles;
  readonly serviceAccounts: ServiceAccounts;
  readonly usage: Usage;
  readonly verifyTokens: VerifyTokens;
  readonly webhooks: Webhooks;

  constructor(options: KeywardOptions = {}) {
    this.baseUrl = (options.baseUrl ?? env("KEYWARD_URL") ?? "http://127.0.0.1:5399").replace(/\/+$/, "");
    this.#managementKey = options.managementKey ?? env("KEYWARD_MANAGEMENT_KEY");
    this.#verifyToken = options.verifyToken;
    this.#workspaceId = options.workspaceId;
    this.#environment = options.environment;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.maxRetries = options.maxRetries ?? DEFAULT_MAX_RETRIES;
    this.#headers = { ...options.headers };
    const f = options.fetch ?? globalThis.fetch;
    if (typeof f !== "function") throw new TypeError("no fetch: use Node 18 or later, or pass options.fetch");
    this.#fetch = f;
    this.keys = new Keys(this);
    this.roles = new Roles(this);
    this.serviceAccounts = new ServiceAccounts(this);
    this.usage = new Usage(this);
    this.verifyTokens = new VerifyTokens(this);
    this.webhooks = new Webhooks(this);
  }

  /**
   * Verifies a secret key (`POST /v1/keys/verify`). Always resolves with the answer for a
   * well-formed request — check `valid` and `code` (`VALID`, `NOT_FOUND`, `REVOKED`,
   * `INSUFFICIENT_PERMISSIONS`, `RATE_LIMITED`, …); rejects with `KeywardError` only when
   * Keyward refused the request itself (400) or could not be reached.
   */
  verify(params: VerifyParams, options?: RequestOptions): Promise<T.Verification> {
    const body = this.#bind({ ...params, permissions: permissionQuery(params.permissions) });
    return this._request<T.Verification>({ method: "POST", path: "/v1/keys/verify", body, idempotent: true, auth: "verify" }, options);
  }

  /**
   * Verifies a signed request (`POST /v1/requests/verify`): the method, path, raw query and
   * raw body as your service received them, and its `Biz-Api-*` headers. Not retried after
   * the request reached Keyward (a second look at the same nonce answers `REPLAYED`).
   */
  verifySigned(params: VerifySignedParams, options?: RequestOptions): Promise<T.Verification> {
    const headers: Record<string, string> = {};
    const src = params.headers;
    const get = typeof (src as { get?: unknown }).get === "function"
      ? (n: string) => (src as { get(n: string): string | null }).get(n) ?? undefined
      : (n: string) => {
          const rec = src as Record<string, string | string[] | undefined>;
          const k = Object.keys(rec).find((x) => x.toLowerCase() === n);
          const v = k === undefined ? undefined : rec[k];
          return Array.isArray(v) ? v[0] : v;
        };
    for (const n of SIGNATURE_HEADER_NAMES) {
      const v = get(n);
      if (v !== undefined) headers[n.replace(/(^|-)([a-z])/g, (_m, d: string, c: string) => d + c.toUpperCase())] = v;
    }
    const body = this.#bind({
      ...params,
      query: params.query ?? "",
      body: params.body ?? "",
      headers,
      permissions: permissionQuery(params.permissions),
    });
    return this._request<T.Verification>({ method: "POST", path: "/v1/requests/verify", body, idempotent: false, auth: "verify" }, options);
  }

  /** Rate limiting as a service (`POST /v1/ratelimit`): `{ success, remaining, reset, limit }`. Spends, so not retried. */
  ratelimit(params: T.RatelimitParams, options?: RequestOptions): Promise<T.RatelimitResult> {
    return this._request({ method: "POST", path: "/v1/ratelimit", body: params, idempotent: false, auth: "management" }, options);
  }

  #bind<B extends { workspace_id?: string | null; environment?: string | null }>(body: B): B {
    const out: B = { ...body };
    if (out.workspace_id === undefined && this.#workspaceId !== undefined) out.workspace_id = this.#workspaceId;
    if (out.environment === undefined && this.#environment !== undefined) out.environment = this.#environment;
    for (const k of Object.keys(out) as (keyof B)[]) if (out[k] === undefined) delete out[k];
    return out;
  }

  /** @internal Sends one call with the client's time-out and retry rules. */
  async _request<R>(call: Call, options: RequestOptions = {}): Promise<R> {
    let url = this.baseUrl + call.path;
    if (call.query) {
      const qs = new URLSearchParams();
      for (const [k, v] of Object.entries(call.query)) if (v !== undefined && v !== null) qs.set(k, String(v));
      const s = qs.toString();
      if (s) url += "?" + s;
    }
    const headers: Record<string, string> = {
      accept: "application/json",
      "user-agent": `keyward-typescript/${VERSION}`,
      ...this.#headers,
      ...options.headers,
    };
    if (call.body !== undefined) headers["content-type"] = "application/json";
    if (call.auth === "management" && this.#managementKey) headers.authorization = `Bearer ${this.#managementKey}`;
    if (call.auth === "verify" && this.#verifyToken) headers["keyward-verify-token"] = this.#verifyToken;
    if (call.idempotencyKey) headers["idempotency-key"] = call.idempotencyKey;
    const idempotent = call.idempotent || call.idempotencyKey !== undefined;
    const maxRetries = idempotent ? options.maxRetries ?? this.maxRetries : 0;
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const payload = call.body === undefined ? undefined : JSON.stringify(call.body);

    for (let attempt = 0; ; attempt++) {
      const timeout = AbortSignal.timeout(timeoutMs);
      const signal = options.signal ? anySignal([options.signal, timeout]) : timeout;
      let res: Response;
      try {
        res = await this.#fetch(url, { method: call.method, headers, body: payload, signal });
      } catch (err) {
        if (options.signal?.aborted) throw err;
        const timedOut = timeout.aborted;
        if (attempt < maxRetries) {
          await sleep(backoff(attempt), options.signal);
          continue;
        }
        if (timedOut) throw new KeywardTimeoutError(`${call.method} ${call.path}: no answer within ${timeoutMs} ms`, err);
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        throw new KeywardConnectionError(
          `${call.method} ${call.path}: cannot reach ${this.baseUrl} (${cause?.code ?? cause?.message ?? (err as Error).message})`,
          err,
        );
      }
      if (!res.ok && RETRY_STATUSES.has(res.status) && attempt < maxRetries) {
        const wait = retryWait(attempt, retryAfterMs(res.headers.get("retry-after")));
        if (wait !== undefined) {
          await res.body?.cancel().catch(() => undefined);
          await sleep(wait, options.signal);
          continue;
        }
      }
      return (await decode(res, call)) as R;
    }
  }
}

function anySignal(signals: AbortSignal[]): AbortSignal {
  const any = (AbortSignal as unknown as { any?: (s: AbortSignal[]) => AbortSignal }).any;
  if (any) return any(signals);
  const c = new AbortController();
  for (const s of signals) {
    if (s.aborted) c.abort(s.reason);
    else s.addEventListener("abort", () => c.abort(s.reason), { once: true });
  }
  return c.signal;
}

/** @internal The wait before retry `attempt` (from 0) when the server named none: from 250 ms doubling, with jitter. */
export function backoff(attempt: number): number {
  const base = Math.min(8000, 250 * 2 ** attempt);
  return base / 2 + Math.random() * (base / 2);
}

/**
 * @internal The wait before retry `attempt` after an answer: its `Retry-After` (in milliseconds)
 * when it has one, else `backoff`; `undefined` (do not retry) past a minute.
 */
export function retryWait(attempt: number, retryAfter: number | undefined): number | undefined {
  if (retryAfter === undefined) return backoff(attempt);
  return retryAfter <= MAX_RETRY_AFTER_MS ? retryAfter : undefined;
}

/** @internal `Retry-After` (seconds or an HTTP date) in milliseconds. */
export function retryAfterMs(h: string | null): number | undefined {
  if (!h) return undefined;
  if (/^\d+$/.test(h.trim())) return Number(h.trim()) * 1000;
  const t = Date.parse(h);
  return Number.isNaN(t) ? undefined : Math.max(0, t - Date.now());
}

async function decode(res: Response, call: Call): Promise<unknown> {
  const text = await res.text();
  let data: unknown = undefined;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (res.ok) return data;
  const e = (data as { error?: { code?: string; message?: string; field?: string | null; verification_code?: string | null } } | undefined)?.error;
  const retryAfter = retryAfterMs(res.headers.get("retry-after"));
  throw new KeywardError({
    message: e?.message ?? `${call.method} ${call.path} answered ${res.status}`,
    code: e?.code ?? `http_${res.status}`,
    status: res.status,
    field: e?.field,
    verificationCode: e?.verification_code,
    requestId: res.headers.get("x-request-id"),
    retryAfter: retryAfter === undefined ? undefined : Math.ceil(retryAfter / 1000),
    body: data,
  });
}

abstract class Resource {
  constructor(protected readonly client: Keyward) {}
  protected _get<R>(path: string, query?: Record<string, unknown>, options?: RequestOptions): Promise<R> {
    return this.client._request<R>({ method: "GET", path, query, idempotent: true, auth: "management" }, options);
  }
  protected _post<R>(path: string, body: unknown, options?: RequestOptions, idempotencyKey?: string): Promise<R> {
    return this.client._request<R>({ method: "POST", path, body, idempotent: false, idempotencyKey, auth: "management" }, options);
  }
  protected _patch<R>(path: string, body: unknown, options?: RequestOptions): Promise<R> {
    return this.client._request<R>({ method: "PATCH", path, body, idempotent: false, auth: "management" }, options);
  }
  protected _del<R>(path: string, query?: Record<string, unknown>, options?: RequestOptions): Promise<R> {
    return this.client._request<R>({ method: "DELETE", path, query, idempotent: true, auth: "management" }, options);
  }
  /** Creates carry an Idempotency-Key (the caller's, or a new one) so that retrying them is safe. */
  protected idempotencyKey(options?: RequestOptions): string {
    return options?.idempotencyKey ?? randomUUID();
  }
}

/** `kw.keys`: create, list, get, update, rotate and revoke keys; their usage. */
export class Keys extends Resource {
  /** `POST /v1/keys` → the key with its `secret` (shown only here). Retried safely under an Idempotency-Key. */
  create(params: T.CreateKeyParams, options?: RequestOptions): Promise<T.CreatedKey> {
    return this._post("/v1/keys", params, options, this.idempotencyKey(options));
  }
  /** `GET /v1/keys` → one page: `{ items, next_cursor }`. */
  list(params: ListKeysParams = {}, options?: RequestOptions): Promise<T.KeyList> {
    return this._get("/v1/keys", params, options);
  }
  /** Every key matching `params`, page after page: `for await (const key of kw.keys.iterate()) …`. */
  async *iterate(params: ListKeysParams = {}, options?: RequestOptions): AsyncGenerator<T.Key> {
    let cursor = params.cursor;
    do {
      const page = await this.list({ ...params, cursor }, options);
      yield* page.items;
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
  }
  /** `GET /v1/keys/{id}`. */
  get(id: string, options?: RequestOptions): Promise<T.Key> {
    return this._get(`/v1/keys/${seg(id)}`, undefined, options);
  }
  /** `PATCH /v1/keys/{id}`: fields left out keep their value; `null` clears. */
  update(id: string, params: T.UpdateKeyParams, options?: RequestOptions): Promise<T.Key> {
    return this._patch(`/v1/keys/${seg(id)}`, params, options);
  }
  /** `POST /v1/keys/{id}/rotate` → the new key with its `secret`; the old one works for `grace_period` (default `0s`). */
  rotate(id: string, params: T.RotateKeyParams = {}, options?: RequestOptions): Promise<T.CreatedKey> {
    return this._post(`/v1/keys/${seg(id)}/rotate`, params, options, this.idempotencyKey(options));
  }
  /** `POST /v1/keys/{id}/revoke` → the key, `revoked` (or `pending_revoke` under an approval rule). Idempotent. */
  revoke(id: string, options?: RequestOptions): Promise<T.Key> {
    return this.client._request({ method: "POST", path: `/v1/keys/${seg(id)}/revoke`, idempotent: true, auth: "management" }, options);
  }
  /** `GET /v1/keys/{id}/usage`: verifications per bucket and code. */
  usage(id: string, params: UsageParams = {}, options?: RequestOptions): Promise<T.KeyUsage> {
    return this._get(`/v1/keys/${seg(id)}/usage`, params, options);
  }
}

/** `kw.roles`: roles that grant permissions to the keys holding them. */
export class Roles extends Resource {
  create(params: T.CreateRoleParams, options?: RequestOptions): Promise<T.Role> {
    return this._post("/v1/roles", params, options);
  }
  list(options?: RequestOptions): Promise<T.RoleList> {
    return this._get("/v1/roles", undefined, options);
  }
  get(name: string, options?: RequestOptions): Promise<T.Role> {
    return this._get(`/v1/roles/${seg(name)}`, undefined, options);
  }
  update(name: string, params: T.UpdateRoleParams, options?: RequestOptions): Promise<T.Role> {
    return this._patch(`/v1/roles/${seg(name)}`, params, options);
  }
  /** `DELETE /v1/roles/{name}`; `force: true` takes it off the keys holding it. */
  delete(name: string, params: { force?: boolean } = {}, options?: RequestOptions): Promise<void> {
    return this._del(`/v1/roles/${seg(name)}`, params.force ? { force: "true" } : undefined, options);
  }
}

/** `kw.serviceAccounts`: integration users that own keys. */
export class ServiceAccounts extends Resource {
  create(params: T.CreateServiceAccountParams, options?: RequestOptions): Promise<T.ServiceAccount> {
    return this._post("/v1/service-accounts", params, options);
  }
  list(options?: RequestOptions): Promise<T.ServiceAccountList> {
    return this._get("/v1/service-accounts", undefined, options);
  }
  get(id: string, options?: RequestOptions): Promise<T.ServiceAccount> {
    return this._get(`/v1/service-accounts/${seg(id)}`, undefined, options);
  }
  /** `disabled: true` stops all its keys at once (`DISABLED`). */
  update(id: string, params: T.UpdateServiceAccountParams, options?: RequestOptions): Promise<T.ServiceAccount> {
    return this._patch(`/v1/service-accounts/${seg(id)}`, params, options);
  }
  /** Deletes the account and revokes its keys. */
  delete(id: string, options?: RequestOptions): Promise<void> {
    return this._del(`/v1/service-accounts/${seg(id)}`, undefined, options);
  }
  /** A key owned by the account, holding its role. */
  createKey(id: string, params: T.CreateKeyParams, options?: RequestOptions): Promise<T.CreatedKey> {
    return this._post(`/v1/service-accounts/${seg(id)}/keys`, params, options, this.idempotencyKey(options));
  }
}

/** `kw.usage`: verification counts. */
export class Usage extends Resource {
  /** `GET /v1/usage`: the workspace's totals, buckets and `top_keys`. */
  workspace(params: UsageParams = {}, options?: RequestOptions): Promise<T.WorkspaceUsage> {
    return this._get("/v1/usage", params, options);
  }
  /** `GET /v1/keys/{id}/usage`. */
  key(id: string, params: UsageParams = {}, options?: RequestOptions): Promise<T.KeyUsage> {
    return this._get(`/v1/keys/${seg(id)}/usage`, params, options);
  }
}

/** `kw.verifyTokens`: tokens that bind verification to this workspace (`Keyward-Verify-Token`). */
export class VerifyTokens extends Resource {
  /** → `{ token: "kw_vt_…", … }`, the token shown only here. */
  create(params: { name?: string | null } = {}, options?: RequestOptions): Promise<T.VerifyToken & { token: string }> {
    return this._post("/v1/verify-tokens", params, options);
  }
  list(options?: RequestOptions): Promise<T.VerifyTokenList> {
    return this._get("/v1/verify-tokens", undefined, options);
  }
  revoke(id: string, options?: RequestOptions): Promise<T.VerifyToken> {
    return this._del(`/v1/verify-tokens/${seg(id)}`, undefined, options);
  }
}

/** `kw.webhooks`: endpoints receiving Keyward's events (verify them with `verifyWebhook`). */
export class Webhooks extends Resource {
  /** → the endpoint with its `secret` (`whsec_…`, shown only here). */
  create(params: T.CreateWebhookParams, options?: RequestOptions): Promise<T.Webhook & { secret: string }> {
    return this._post("/v1/webhooks", params, options);
  }
  list(options?: RequestOptions): Promise<T.WebhookList> {
    return this._get("/v1/webhooks", undefined, options);
  }
  get(id: string, options?: RequestOptions): Promise<T.Webhook> {
    return this._get(`/v1/webhooks/${seg(id)}`, undefined, options);
  }
  update(id: string, params: T.UpdateWebhookParams, options?: RequestOptions): Promise<T.Webhook> {
    return this._patch(`/v1/webhooks/${seg(id)}`, params, options);
  }
  delete(id: string, options?: RequestOptions): Promise<void> {
    return this._del(`/v1/webhooks/${seg(id)}`, undefined, options);
  }
  /** Both secrets sign until `overlap` (default 24h) ends. */
  rotateSecret(id: string, params: { overlap?: string | null } = {}, options?: RequestOptions): Promise<T.Webhook & { secret: string }> {
    return this._post(`/v1/webhooks/${seg(id)}/rotate-secret`, params, options);
  }
  /** Queues a `webhook.test` delivery. */
  test(id: string, options?: RequestOptions): Promise<T.WebhookDelivery> {
    return this._post(`/v1/webhooks/${seg(id)}/test`, undefined, options);
  }
  deliveries(id: string, params: ListDeliveriesParams = {}, options?: RequestOptions): Promise<T.WebhookDeliveryList> {
    return this._get(`/v1/webhooks/${seg(id)}/deliveries`, params, options);
  }
  retryDelivery(id: string, deliveryId: string, options?: RequestOptions): Promise<T.WebhookDelivery> {
    return this._post(`/v1/webhooks/${seg(id)}/deliveries/${seg(deliveryId)}/retry`, undefined, options);
  }
  /** `{ public_key: "whpk_…" }`: verifies per-key `callback_url` deliveries. */
  signingKey(options?: RequestOptions): Promise<T.SigningKey> {
    return this._get("/v1/webhooks/signing-key", undefined, options);
  }
}
