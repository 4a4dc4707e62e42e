/**
 * Apps' organisation access tokens (docs/APPS.md): an app installed in other workspaces buys
 * short-lived access tokens for each installation by signing an assertion (RFC 7523) with its
 * APP private key — `EdDSA` for Ed25519, `ES256K` for secp256k1 — and sends them as
 * `Authorization: Bearer …` wherever a Keyward key would go.
 *
 * ```ts
 * const tokens = new TokenSource({
 *   baseUrl: "https://keyward.example.com", appId: "app_01J…", installationId: "inst_01J…",
 *   secretKey: process.env.APP_SECRET!, algorithm: "ed25519",   // app_secret, app_alg
 * });
 * await fetch("https://api.example.com/ledger", { headers: { authorization: await tokens.authorization() } });
 * ```
 */
import { randomUUID } from "node:crypto";
import type { Keyward } from "./client.js";
import { DEFAULT_MAX_RETRIES, VERSION, backoff, retryAfterMs, retryWait, sleep } from "./client.js";
import { KeywardConnectionError, KeywardError, KeywardOAuthError, KeywardTimeoutError } from "./errors.js";
import { Signer, type SigningAlgorithm } from "./signing.js";

export const JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer";
export const TOKEN_PATH = "/v1/oauth/token";
/** How far ahead an assertion's `exp` is set (the server takes at most five minutes). */
const ASSERTION_SECONDS = 120;
/** Answers after which the server has not used the grant: retried. */
const RETRY_STATUSES = new Set([429, 502, 503, 504]);

export interface TokenSourceOptions {
  /** The server, e.g. `https://keyward.example.com` (or give `client`). */
  baseUrl?: string;
  /** A client whose `baseUrl` is the server. */
  client?: Keyward;
  /** The app (`app_…`): the assertion's `iss`. */
  appId: string;
  /** The installation (`inst_…`): the assertion's `sub`. */
  installationId: string;
  /** The APP private key's hex, as `keyward keys generate --key-type APP` writes `app_secret` (or give `signer`). */
  secretKey?: string;
  /** `app_alg`: `ed25519` (default) or `secp256k1`. */
  algorithm?: SigningAlgorithm;
  /** The APP key as a `Signer`. */
  signer?: Signer;
  /** The assertions' `aud`: the token endpoint under the server's `--public-url`, when that is not the URL used to reach it. */
  audience?: string;
  /** How long before its end a token is replaced, in milliseconds (default 60,000). */
  refreshAheadMs?: number;
  /** Time allowed for one call of the token endpoint (each attempt), in milliseconds (default 10,000). */
  timeoutMs?: number;
  /** Retries of a grant answered 429, 502, 503 or 504, or (assertions only) not answered; default the client's `maxRetries`, else 2. */
  maxRetries?: number;
  /** A `fetch` of your own (tests, proxies); default the global one. */
  fetch?: typeof globalThis.fetch;
  /** The time in milliseconds since the epoch that decides when the held token is due (tests); default `Date.now`. Assertions always carry the real time, which the server checks. */
  now?: () => number;
}

interface Held {
  access: string;
  refresh: string | undefined;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

function b64url(data: string | Uint8Array): string {
  return Buffer.from(data).toString("base64url");
}

/**
 * Keeps one installation's access token fresh: signs the assertion, replaces the token a
 * minute before it expires — with the refresh token first, with a new assertion when the
 * refresh is refused — and lets one call at a time do so (two refreshing at once would spend
 * one refresh token twice, which revokes its family). Refusals reject with `KeywardOAuthError`.
 *
 * Answers of 429, 502, 503 and 504 are retried (`maxRetries`, after `Retry-After` or a backoff),
 * and so are assertion grants that got no answer, each with a new assertion. A refresh token
 * that got no answer, or a proxy's 502 or 504, is never sent again (the server may have spent
 * it, and a second use would revoke its family): a new assertion replaces it.
 */
export class TokenSource {
  readonly appId: string;
  readonly installationId: string;
  /** The token endpoint's URL. */
  readonly endpoint: string;
  readonly audience: string;
  readonly maxRetries: number;
  readonly #signer: Signer;
  readonly #refreshAheadMs: number;
  readonly #timeoutMs: number;
  readonly #fetch: typeof globalThis.fetch;
  readonly #now: () => number;
  #held: Held | undefined;
  /** The calls in line: each waits for the one before it. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: TokenSourceOptions) {
    const base = options.baseUrl ?? options.client?.baseUrl;
    if (!base) throw new TypeError("TokenSource needs baseUrl or client");
    if (!options.appId || !options.installationId) throw new TypeError("TokenSource needs appId and installationId");
    this.endpoint = base.replace(/\/+$/, "") + TOKEN_PATH;
    this.audience = options.audience ?? this.endpoint;
    this.appId = options.appId;
    this.installationId = options.installationId;
    if (options.signer) this.#signer = options.signer;
    else if (options.secretKey) this.#signer = new Signer({ secretKey: options.secretKey, algorithm: options.algorithm ?? "ed25519" });
    else throw new TypeError("TokenSource needs secretKey or signer");
    this.#refreshAheadMs = options.refreshAheadMs ?? 60_000;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.maxRetries = options.maxRetries ?? options.client?.maxRetries ?? DEFAULT_MAX_RETRIES;
    const f = options.fetch ?? globalThis.fetch;
    if (typeof f !== "function") throw new TypeError("no fetch: use Node 18 or later, or pass options.fetch");
    this.#fetch = f;
    this.#now = options.now ?? Date.now;
  }

  /** A new signed assertion: `iss` the app, `sub` the installation, `aud` the token endpoint, two minutes to live, a `jti` never used before. */
  assertion(): string {
    const now = Math.floor(Date.now() / 1000); // the server checks iat and exp against its own clock
    const header = { alg: this.#signer.jwsAlgorithm, typ: "JWT" };
    const claims = { iss: this.appId, sub: this.installationId, aud: this.audience, iat: now, exp: now + ASSERTION_SECONDS, jti: randomUUID() };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    return `${input}.${b64url(this.#signer.signJws(input))}`;
  }

  /**
   * A fresh access token: the one held while it has more than `refreshAheadMs` left, else a
   * refreshed one, else one bought with a new assertion.
   *
   * `signal` ends this caller's wait (rejecting with its reason), not the grant: other callers
   * may be waiting for the same token, and a refresh cut off midway might spend its refresh
   * token unanswered. The token it brings is held for the next call.
   */
  token(options: { signal?: AbortSignal } = {}): Promise<string> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const run = this.#queue.then(() => this.#fresh());
    this.#queue = run.catch(() => undefined);
    if (!signal) return run;
    return new Promise((resolve, reject) => {
      const abandon = () => reject(signal.reason);
      signal.addEventListener("abort", abandon, { once: true });
      const settle = () => signal.removeEventListener("abort", abandon);
      run.then(
        (token) => (settle(), resolve(token)),
        (err: unknown) => (settle(), reject(err)),
      );
    });
  }

  /** `Authorization`'s value: `Bearer <access token>` (`signal` as for {@link token}). */
  async authorization(options: { signal?: AbortSignal } = {}): Promise<string> {
    return `Bearer ${await this.token(options)}`;
  }

  /** Drops the held tokens: the next call buys new ones with an assertion. */
  forget(): void {
    this.#held = undefined;
  }

  async #fresh(): Promise<string> {
    const now = this.#now();
    const held = this.#held;
    if (held && held.expiresAt - this.#refreshAheadMs > now) return held.access;
    if (held?.refresh) {
      const form = { grant_type: "refresh_token", refresh_token: held.refresh };
      try {
        return await this.#retrying(() => form, false, now);
      } catch (err) {
        // Busy or unavailable past the retries: the refresh token is unspent, kept for the next call.
        if (!(err instanceof KeywardError) || isTransient(err, true)) throw err;
        // Ended, reused or revoked — or perhaps spent without an answer, when a second use
        // would revoke its family: never sent again, a new assertion starts a new family.
        this.#held = { ...held, refresh: undefined };
      }
    }
    return this.#retrying(() => ({ grant_type: JWT_BEARER, assertion: this.assertion() }), true, now);
  }

  /** `#grant` with retries: after a transient answer, and after no answer when `resendable`; `form` is called for each attempt. */
  async #retrying(form: () => Record<string, string>, resendable: boolean, now: number): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#grant(form(), now);
      } catch (err) {
        if (!(err instanceof KeywardError) || attempt >= this.maxRetries) throw err;
        let wait: number | undefined;
        if (isTransient(err, !resendable)) wait = retryWait(attempt, err.retryAfter === undefined ? undefined : err.retryAfter * 1000);
        else if (resendable && (err instanceof KeywardTimeoutError || err instanceof KeywardConnectionError)) wait = backoff(attempt);
        if (wait === undefined) throw err;
        await sleep(wait);
      }
    }
  }

  /** One call of the token endpoint. Rejects with `KeywardTimeoutError` or `KeywardConnectionError` when no whole answer arrived. */
  async #grant(form: Record<string, string>, now: number): Promise<string> {
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    let res: Response | undefined;
    let text: string;
    try {
      res = await this.#fetch(this.endpoint, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json", "user-agent": `keyward-typescript/${VERSION}` },
        body: new URLSearchParams(form).toString(),
        signal: timeout,
      });
      text = await res.text();
    } catch (err) {
      if (timeout.aborted) throw new KeywardTimeoutError(`POST ${TOKEN_PATH}: no answer within ${this.#timeoutMs} ms`, err);
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const what = res ? "the answer was cut off" : `cannot reach ${this.endpoint}`;
      throw new KeywardConnectionError(`POST ${TOKEN_PATH}: ${what} (${cause?.code ?? cause?.message ?? (err as Error).message})`, err);
    }
    let data: unknown;
    try {
      data = text ? JSON.parse(text) : undefined;
    } catch {
      data = text;
    }
    const body = (typeof data === "object" && data !== null ? data : {}) as Record<string, unknown>;
    if (!res.ok) {
      const code = typeof body.error === "string" ? body.error : `http_${res.status}`;
      const description = typeof body.error_description === "string" ? body.error_description : undefined;
      const retryAfter = retryAfterMs(res.headers.get("retry-after"));
      throw new KeywardOAuthError({
        message: description ?? `POST ${TOKEN_PATH} answered ${res.status} ${code}`, code, status: res.status, requestId: res.headers.get("x-request-id"),
        retryAfter: retryAfter === undefined ? undefined : Math.ceil(retryAfter / 1000), body: data,
      });
    }
    if (typeof body.access_token !== "string" || typeof body.expires_in !== "number") {
      throw new KeywardError({ message: `POST ${TOKEN_PATH}: the answer is not a token`, code: "decode_error", status: res.status, body: data });
    }
    this.#held = {
      access: body.access_token,
      refresh: typeof body.refresh_token === "string" ? body.refresh_token : undefined,
      expiresAt: now + body.expires_in * 1000,
    };
    return body.access_token;
  }
}

/**
 * Those a refresh is retried on with the same refresh token: Keyward's own answers before it
 * spends one. A proxy's 502 or 504 may come after the server spent it (a second use would
 * revoke its family), so such a refresh counts as unanswered.
 */
const REFRESH_RETRY_STATUSES = new Set([429, 503]);

/** Answered, but busy or unavailable: the grant was not used, and may be sent again. */
function isTransient(err: KeywardError, refresh = false): boolean {
  const statuses = refresh ? REFRESH_RETRY_STATUSES : RETRY_STATUSES;
  return err instanceof KeywardOAuthError && err.status !== undefined && statuses.has(err.status);
}
