/**
 * Standard Webhooks (https://www.standardwebhooks.com/) verification of Keyward's deliveries:
 * `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`, a space-separated
 * list of `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` (an endpoint's `whsec_…`
 * secret) or `v1a,<base64 Ed25519 signature>` (a key's `callback_url`, checked against the
 * workspace's `whpk_…` public key from `GET /v1/webhooks/signing-key`).
 */
import { createHmac, createPublicKey, timingSafeEqual, verify as cryptoVerify } from "node:crypto";
import { WebhookVerificationError } from "./errors.js";

export { WebhookVerificationError };

/** A Keyward event as delivered: `{ type, timestamp, data }`. */
export interface WebhookEvent<T = Record<string, unknown>> {
  type: string;
  timestamp: string;
  data: T;
}

/** Headers as a Fetch `Headers`, Node's `IncomingHttpHeaders`, or a plain object in any case. */
export type WebhookHeaders =
  | { get(name: string): string | null }
  | Record<string, string | string[] | undefined>;

export interface VerifyWebhookOptions {
  /** Accepted clock difference, in seconds, either way (default 300, the specification's). */
  toleranceSeconds?: number;
  /** "Now" in Unix seconds, for tests. */
  now?: number;
}

const ED25519_SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as { get?: unknown }).get === "function") {
    const v = (headers as { get(name: string): string | null }).get(name);
    return v ?? undefined;
  }
  const rec = headers as Record<string, string | string[] | undefined>;
  for (const k of Object.keys(rec)) {
    if (k.toLowerCase() === name) {
      const v = rec[k];
      return Array.isArray(v) ? v.join(" ") : v;
    }
  }
  return undefined;
}

function payloadBytes(payload: string | Uint8Array | ArrayBuffer): Buffer {
  if (typeof payload === "string") return Buffer.from(payload, "utf8");
  if (payload instanceof ArrayBuffer) return Buffer.from(payload);
  return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
}

function b64(s: string, what: string): Buffer {
  const buf = Buffer.from(s, "base64");
  if (buf.length === 0) throw new WebhookVerificationError(`${what} is not base64`);
  return buf;
}

/**
 * Checks a delivery and returns its parsed event; throws `WebhookVerificationError` when
 * a header is missing, the timestamp is outside the tolerance, or no signature matches.
 *
 * `payload` must be the raw body exactly as received (not re-serialised JSON). `secret` is
 * the endpoint's `whsec_…` secret, or the workspace's `whpk_…` public key for per-key
 * callbacks; pass several (an array) during a rotation.
 */
export function verifyWebhook<T = Record<string, unknown>>(
  payload: string | Uint8Array | ArrayBuffer,
  headers: WebhookHeaders,
  secret: string | string[],
  options: VerifyWebhookOptions = {},
): WebhookEvent<T> {
  const id = header(headers, "webhook-id");
  const timestamp = header(headers, "webhook-timestamp");
  const signatures = header(headers, "webhook-signature");
  if (!id || !timestamp || !signatures) {
    throw new WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header");
  }
  if (!/^\d+$/.test(timestamp)) throw new WebhookVerificationError("webhook-timestamp is not a Unix time");
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const tolerance = options.toleranceSeconds ?? 300;
  const ts = Number(timestamp);
  if (ts < now - tolerance) throw new WebhookVerificationError("webhook-timestamp is too old");
  if (ts > now + tolerance) throw new WebhookVerificationError("webhook-timestamp is in the future");

  const body = payloadBytes(payload);
  const content = Buffer.concat([Buffer.from(`${id}.${timestamp}.`, "utf8"), body]);
  const given = signatures.split(" ").filter(Boolean);
  const secrets = Array.isArray(secret) ? secret : [secret];
  if (secrets.length === 0) throw new WebhookVerificationError("no secret given");

  for (const s of secrets) {
    if (s.startsWith("whpk_")) {
      const raw = b64(s.slice(5), "the public key");
      if (raw.length !== 32) throw new WebhookVerificationError("a whpk_ key is 32 bytes");
      const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: "der", type: "spki" });
      for (const g of given) {
        if (!g.startsWith("v1a,")) continue;
        const sig = Buffer.from(g.slice(4), "base64");
        if (sig.length === 64 && cryptoVerify(null, content, key, sig)) return parse<T>(body);
      }
    } else {
      const keyBytes = b64(s.startsWith("whsec_") ? s.slice(6) : s, "the secret");
      const expected = createHmac("sha256", keyBytes).update(content).digest();
      for (const g of given) {
        if (!g.startsWith("v1,")) continue;
        const sig = Buffer.from(g.slice(3), "base64");
        if (sig.length === expected.length && timingSafeEqual(sig, expected)) return parse<T>(body);
      }
    }
  }
  throw new WebhookVerificationError("no matching signature");
}

function parse<T>(body: Buffer): WebhookEvent<T> {
  try {
    return JSON.parse(body.toString("utf8")) as WebhookEvent<T>;
  } catch {
    throw new WebhookVerificationError("the payload is not JSON");
  }
}

/**
 * The same check, shaped like the Standard Webhooks libraries' `Webhook` class:
 * `new Webhook(secret).verify(payload, headers)`.
 */
export class Webhook {
  readonly #secrets: string[];
  readonly #options: VerifyWebhookOptions;
  constructor(secret: string | string[], options: VerifyWebhookOptions = {}) {
    this.#secrets = Array.isArray(secret) ? secret : [secret];
    this.#options = options;
  }
  verify<T = Record<string, unknown>>(payload: string | Uint8Array | ArrayBuffer, headers: WebhookHeaders): WebhookEvent<T> {
    return verifyWebhook<T>(payload, headers, this.#secrets, this.#options);
  }
}
