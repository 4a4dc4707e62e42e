/**
 * Friendly names for the wire types generated into `openapi.ts` from the server's own
 * OpenAPI document. Fields keep the wire's snake_case.
 */
import type { components } from "./openapi.js";

type S = components["schemas"];

export type Key = S["KeyView"];
/** The answer of create and rotate: the key with its `secret`, shown only this once. */
export type CreatedKey = S["KeyView"] & { secret: string };
export type KeyList = S["KeyList"];
export type CreateKeyParams = S["CreateKeyRequest"];
export type UpdateKeyParams = S["UpdateKeyRequest"];
export type RotateKeyParams = S["RotateRequest"];
export type KeyStatus = S["KeyStatus"];
export type KeyGrant = S["KeyGrant"];
export type RateLimitSpec = S["RateLimitSpec"];
export type CreditsSpec = S["CreditsSpec"];

export type VerifyCode = S["VerifyCode"];
/** The answer of every verification: `valid`, `code`, `key_id`, `permissions`, `ratelimit`, … */
export type Verification = S["VerifyResponse"];
export type VerifyKeyRequest = S["VerifyKeyRequest"];
export type VerifySignedRequest = S["VerifySignedRequest"];

export type Role = S["RoleView"];
export type RoleList = S["RoleList"];
export type CreateRoleParams = S["CreateRoleRequest"];
export type UpdateRoleParams = S["UpdateRoleRequest"];

export type ServiceAccount = S["ServiceAccountView"];
export type ServiceAccountList = S["ServiceAccountList"];
export type CreateServiceAccountParams = S["CreateServiceAccountRequest"];
export type UpdateServiceAccountParams = S["UpdateServiceAccountRequest"];

export type KeyUsage = S["KeyUsage"];
export type WorkspaceUsage = S["WorkspaceUsage"];
export type UsageBucket = S["UsageBucket"];

export type VerifyToken = S["VerifyTokenView"];
export type VerifyTokenList = S["VerifyTokenList"];

export type Webhook = S["WebhookView"];
export type WebhookList = S["WebhookList"];
export type CreateWebhookParams = S["NewWebhookRequest"];
export type UpdateWebhookParams = S["WebhookPatch"];
export type WebhookDelivery = S["DeliveryView"];
export type WebhookDeliveryList = S["DeliveryList"];
export type SigningKey = S["SigningKeyView"];

export type RatelimitParams = S["LimitRequest"];
export type RatelimitResult = S["LimitAnswer"];

export type ErrorBody = S["ErrorBody"];
