// Type-checked (not run) by ci.sh: the package's declarations as a TypeScript user sees them.
import Keyward, { KeywardError, KeywardOAuthError, TokenSource, verifyWebhook, Signer, type Verification, type CreatedKey, type Key } from "@keyward/sdk";
import express from "express";
import { keywardAuth as expressAuth } from "@keyward/sdk/express";
import { Hono } from "hono";
import { keywardAuth as honoAuth, type KeywardVariables } from "@keyward/sdk/hono";
import Fastify from "fastify";
import { keywardAuth as fastifyAuth } from "@keyward/sdk/fastify";

async function main(): Promise<void> {
  const kw = new Keyward({ baseUrl: "http://127.0.0.1:5399", managementKey: "kw_mk_x", timeoutMs: 5000, maxRetries: 1 });
  const key: CreatedKey = await kw.keys.create({ name: "n", environment: "live", permissions: ["a"], meta: { team: "x" } });
  const secret: string = key.secret;
  const got: Key = await kw.keys.get(key.id);
  const v: Verification = await kw.verify({ key: secret, permissions: ["a", "b"] });
  const ok: boolean = v.valid;
  const code: "VALID" | string = v.code;
  const remaining: number | undefined = v.ratelimit?.remaining;
  await kw.keys.revoke(got.id);
  try {
    await kw.keys.get("nope");
  } catch (e) {
    if (e instanceof KeywardError) {
      const s: number | undefined = e.status;
      const f: string | undefined = e.field;
      void s, f;
    }
  }
  const headers = new Signer({ secretKey: "00".repeat(32) }).sign({ method: "GET", path: "/" });
  await kw.verifySigned({ method: "GET", path: "/", headers });
  verifyWebhook("{}", { "webhook-id": "x" }, "whsec_x");
  const tokens = new TokenSource({ client: kw, appId: "app_x", installationId: "inst_x", secretKey: "01".repeat(32), algorithm: "secp256k1" });
  try {
    const bearer: string = await tokens.authorization();
    void bearer;
  } catch (e) {
    if (e instanceof KeywardOAuthError) {
      const rfc6749: string = e.error;
      void rfc6749;
    }
  }
  void ok, code, remaining;

  const app = express();
  app.get("/x", expressAuth({ client: kw, permissions: "a", scope: (req) => `w:${req.url}` }), (req, res) => {
    res.json({ id: req.keyward?.key_id });
  });

  const h = new Hono<{ Variables: KeywardVariables }>();
  h.get("/x", honoAuth({ client: kw, permissions: "a" }), (c) => c.json({ id: c.get("keyward").key_id }));

  const f = Fastify();
  f.get("/x", { preHandler: fastifyAuth({ client: kw, permissions: "a" }) }, async (request) => ({ id: request.keyward?.key_id }));
}
void main;
