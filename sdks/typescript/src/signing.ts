/**
 * Signed requests: instead of a secret key, a client keeps a private key (Ed25519 or
 * secp256k1), registers only its public key with Keyward, and signs each request with the
 * `Biz-Api-Key` / `Biz-Api-Nonce` / `Biz-Api-Signature` headers (docs/SIGNED_REQUESTS.md):
 *
 *   string  = METHOD|PATH|NONCE|QUERY|BODY
 *   digest  = SHA-256(SHA-256(utf8(string)))
 *   Ed25519 over the 32-byte digest (hex); secp256k1: ECDSA over the digest, DER, low-S (hex).
 *
 * Node's own crypto does the work; nothing else is needed.
 */
import { createHash, createPrivateKey, createPublicKey, createECDH, generateKeyPairSync, sign, type KeyObject } from "node:crypto";

export type SigningAlgorithm = "ed25519" | "secp256k1";

export const SIGNATURE_HEADERS = {
  key: "Biz-Api-Key",
  nonce: "Biz-Api-Nonce",
  signature: "Biz-Api-Signature",
} as const;

export type SignedHeaders = {
  "Biz-Api-Key": string;
  "Biz-Api-Nonce": string;
  "Biz-Api-Signature": string;
};

export interface RequestToSign {
  /** e.g. `GET`; upper-cased. */
  method: string;
  /** The path without host or query, e.g. `/v2/wallets`. */
  path: string;
  /** The raw query string as it will be sent, without `?` (e.g. `limit=10&wallet_type=Custodial`). */
  query?: string;
  /** The raw body as it will be sent (empty when none). */
  body?: string | Uint8Array;
  /** Milliseconds since the epoch by default; must be within the server's window (30 s). */
  nonce?: string | number | bigint;
}

const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SECP256K1_SEC1_PREFIX = Buffer.from("302e0201010420", "hex");
const SECP256K1_SEC1_SUFFIX = Buffer.from("a00706052b8104000a", "hex");
const SECP256K1_N = BigInt("0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141");

function bodyText(body: string | Uint8Array | undefined): string {
  if (body === undefined) return "";
  return typeof body === "string" ? body : Buffer.from(body).toString("utf8");
}

/** `METHOD|PATH|NONCE|QUERY|BODY`, the string a signature covers. */
export function stringToSign(req: RequestToSign & { nonce: string | number | bigint }): string {
  return [req.method.toUpperCase(), req.path, String(req.nonce), req.query ?? "", bodyText(req.body)].join("|");
}

/** SHA-256(SHA-256(utf8(string))): the 32 bytes that are signed. */
export function signingDigest(text: string): Buffer {
  const once = createHash("sha256").update(text, "utf8").digest();
  return createHash("sha256").update(once).digest();
}

function hexBytes(hex: string, what: string): Buffer {
  const clean = hex.trim().replace(/^0x/i, "");
  if (!/^[0-9a-fA-F]*$/.test(clean) || clean.length % 2 !== 0) throw new TypeError(`${what} is not hex`);
  return Buffer.from(clean, "hex");
}

function derInt(buf: Buffer, at: number): { value: bigint; next: number } {
  if (buf[at] !== 0x02) throw new Error("bad DER signature");
  const len = buf[at + 1]!;
  const bytes = buf.subarray(at + 2, at + 2 + len);
  return { value: BigInt("0x" + (bytes.toString("hex") || "0")), next: at + 2 + len };
}

function encodeDerInt(v: bigint): Buffer {
  let hex = v.toString(16);
  if (hex.length % 2) hex = "0" + hex;
  let bytes = Buffer.from(hex, "hex");
  if (bytes[0]! & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return Buffer.concat([Buffer.from([0x02, bytes.length]), bytes]);
}

/** Rewrites an ECDSA DER signature to its low-S form (s ≤ n/2), as Keyward requires. */
function lowS(der: Buffer): Buffer {
  const r = derInt(der, 2);
  const s = derInt(der, r.next);
  if (s.value <= SECP256K1_N / 2n) return der;
  const body = Buffer.concat([encodeDerInt(r.value), encodeDerInt(SECP256K1_N - s.value)]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}

/**
 * Holds a private key and signs requests with it.
 *
 * ```ts
 * const signer = new Signer({ secretKey: process.env.KEYWARD_API_SECRET! });   // hex seed
 * const headers = signer.sign({ method: "GET", path: "/v2/wallets", query: "limit=10" });
 * await fetch("https://api.example.com/v2/wallets?limit=10", { headers });
 * ```
 */
export class Signer {
  readonly algorithm: SigningAlgorithm;
  /** The public key as registered with Keyward (hex; 33-byte compressed for secp256k1). */
  readonly publicKey: string;
  readonly #key: KeyObject;

  constructor(opts: { secretKey: string; algorithm?: SigningAlgorithm }) {
    this.algorithm = opts.algorithm ?? "ed25519";
    const secret = hexBytes(opts.secretKey, "secretKey");
    if (secret.length !== 32) throw new TypeError("secretKey must be 32 bytes (64 hex characters)");
    if (this.algorithm === "ed25519") {
      this.#key = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, secret]), format: "der", type: "pkcs8" });
      const spki = createPublicKey(this.#key).export({ format: "der", type: "spki" });
      this.publicKey = spki.subarray(spki.length - 32).toString("hex");
    } else if (this.algorithm === "secp256k1") {
      this.#key = createPrivateKey({
        key: Buffer.concat([SECP256K1_SEC1_PREFIX, secret, SECP256K1_SEC1_SUFFIX]),
        format: "der",
        type: "sec1",
      });
      const ecdh = createECDH("secp256k1");
      ecdh.setPrivateKey(secret);
      this.publicKey = ecdh.getPublicKey("hex", "compressed");
    } else {
      throw new TypeError(`unknown algorithm ${String(this.algorithm)}`);
    }
  }

  /** A new random key pair: `{ secretKey, publicKey }` in hex. */
  static generate(algorithm: SigningAlgorithm = "ed25519"): { algorithm: SigningAlgorithm; secretKey: string; publicKey: string } {
    let secretKey: string;
    if (algorithm === "ed25519") {
      const { privateKey } = generateKeyPairSync("ed25519");
      const der = privateKey.export({ format: "der", type: "pkcs8" });
      secretKey = der.subarray(der.length - 32).toString("hex");
    } else {
      const ecdh = createECDH("secp256k1");
      ecdh.generateKeys();
      secretKey = ecdh.getPrivateKey("hex").padStart(64, "0");
    }
    return { algorithm, secretKey, publicKey: new Signer({ secretKey, algorithm }).publicKey };
  }

  /** The JWS `alg` this key signs with: `EdDSA` (Ed25519) or `ES256K` (secp256k1). */
  get jwsAlgorithm(): "EdDSA" | "ES256K" {
    return this.algorithm === "ed25519" ? "EdDSA" : "ES256K";
  }

  /**
   * A JWS signature of `header.payload` (an app's assertion, see `TokenSource`): Ed25519 over
   * the bytes; ES256K: ECDSA over their SHA-256, low-S, `r ‖ s` (RFC 8812).
   */
  signJws(signingInput: string | Uint8Array): Buffer {
    const data = typeof signingInput === "string" ? Buffer.from(signingInput, "utf8") : signingInput;
    if (this.algorithm === "ed25519") return sign(null, data, this.#key);
    const raw = sign("sha256", data, { key: this.#key, dsaEncoding: "ieee-p1363" });
    const s = BigInt("0x" + raw.subarray(32).toString("hex"));
    if (s <= SECP256K1_N / 2n) return raw;
    return Buffer.concat([raw.subarray(0, 32), Buffer.from((SECP256K1_N - s).toString(16).padStart(64, "0"), "hex")]);
  }

  /** The three `Biz-Api-*` headers for a request. */
  sign(req: RequestToSign): SignedHeaders {
    const nonce = req.nonce ?? Date.now();
    const text = stringToSign({ ...req, nonce });
    let signature: string;
    if (this.algorithm === "ed25519") {
      signature = sign(null, signingDigest(text), this.#key).toString("hex");
    } else {
      const once = createHash("sha256").update(text, "utf8").digest();
      signature = lowS(sign("sha256", once, { key: this.#key, dsaEncoding: "der" })).toString("hex");
    }
    return {
      "Biz-Api-Key": this.publicKey,
      "Biz-Api-Nonce": String(nonce),
      "Biz-Api-Signature": signature,
    };
  }
}
