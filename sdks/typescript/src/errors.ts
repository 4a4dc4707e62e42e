/**
 * Every failure of the SDK is a `KeywardError`: an answer of the server in Keyward's error
 * shape (`{"error": {"code", "message", "field"?, "verification_code"?}}`), a time-out or a
 * connection that failed. Match on `code` (and `status`), never on `message`.
 */
export class KeywardError extends Error {
  /** The HTTP status, or `undefined` when no answer arrived (time-out, connection error). */
  readonly status: number | undefined;
  /** Keyward's error code (`invalid_request`, `not_found`, `conflict`, …), or `timeout` / `connection_error`. */
  readonly code: string;
  /** The input field at fault, when one is (`name`, `Idempotency-Key`, `ratelimits[0].name`, …). */
  readonly field: string | undefined;
  /** For refused verifications on forward-auth style surfaces: the verification code. */
  readonly verificationCode: string | undefined;
  /** The server's `X-Request-Id` for this answer, handy in a support request. */
  readonly requestId: string | undefined;
  /** Seconds from `Retry-After`, when the server sent one (429, 507). */
  readonly retryAfter: number | undefined;
  /** The parsed body of the answer, when it had one. */
  readonly body: unknown;

  constructor(init: {
    message: string;
    code: string;
    status?: number;
    field?: string | null;
    verificationCode?: string | null;
    requestId?: string | null;
    retryAfter?: number;
    body?: unknown;
    cause?: unknown;
  }) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "KeywardError";
    this.status = init.status;
    this.code = init.code;
    this.field = init.field ?? undefined;
    this.verificationCode = init.verificationCode ?? undefined;
    this.requestId = init.requestId ?? undefined;
    this.retryAfter = init.retryAfter;
    this.body = init.body;
  }

  /** The error in Keyward's wire shape. */
  toJSON(): { error: { code: string; message: string; field?: string; verification_code?: string } } {
    const error: { code: string; message: string; field?: string; verification_code?: string } = {
      code: this.code,
      message: this.message,
    };
    if (this.field !== undefined) error.field = this.field;
    if (this.verificationCode !== undefined) error.verification_code = this.verificationCode;
    return { error };
  }
}

/** No answer within `timeoutMs` (after the retries allowed). `code` is `timeout`. */
export class KeywardTimeoutError extends KeywardError {
  constructor(message: string, cause?: unknown) {
    super({ message, code: "timeout", cause });
    this.name = "KeywardTimeoutError";
  }
}

/** The server could not be reached (refused, reset, DNS). `code` is `connection_error`. */
export class KeywardConnectionError extends KeywardError {
  constructor(message: string, cause?: unknown) {
    super({ message, code: "connection_error", cause });
    this.name = "KeywardConnectionError";
  }
}

/**
 * The token endpoint refused a grant (RFC 6749 §5.2). `code` (also `error`) is
 * `invalid_request`, `invalid_client` (401: no such app, or not signed by its key),
 * `invalid_grant` (claims wrong or expired, `jti` used before, not installed or pending, a
 * refresh token unknown, ended or reused), `unsupported_grant_type`, `slow_down` (429, with
 * `retryAfter`), or `server_error` (503: the server has no `--public-url`, or its database is
 * unavailable); `message` is its `error_description`.
 */
export class KeywardOAuthError extends KeywardError {
  constructor(init: { message: string; code: string; status: number; requestId?: string | null; retryAfter?: number; body?: unknown }) {
    super(init);
    this.name = "KeywardOAuthError";
  }

  /** RFC 6749's name for `code`. */
  get error(): string {
    return this.code;
  }
}

/** A webhook delivery whose signature or timestamp does not check out. */
export class WebhookVerificationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WebhookVerificationError";
  }
}
