// Standard Webhooks: real deliveries from the server to a local listener, verified by the SDK.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { verifyWebhook, WebhookVerifier, WebhookVerificationError } from "@keyward/sdk";
import { verifyWebhook as fromSubpath } from "@keyward/sdk/webhooks";
import { client, server, listen, unique, eventually } from "./helpers.mjs";

function receiver() {
  const received = [];
  return listen((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks), url: req.url });
      res.writeHead(204).end();
    });
  }).then((l) => ({ ...l, received }));
}

test("an endpoint's delivery (v1, whsec_) verifies; tampering, a wrong secret and an old timestamp do not", async (t) => {
  const kw = await client();
  const rx = await receiver();
  t.after(() => rx.close());
  const hook = await kw.webhooks.create({ url: `${rx.url}/hooks`, events: ["key.*"], description: "sdk test" });
  t.after(() => kw.webhooks.delete(hook.id));
  assert.match(hook.secret, /^whsec_/);

  const key = await kw.keys.create({ name: unique("hooked") });
  const delivery = await eventually(
    () => rx.received.find((d) => JSON.parse(d.body).data?.key_id === key.id && JSON.parse(d.body).type === "key.created"),
    20_000,
    "the key.created delivery",
  );
  const event = verifyWebhook(delivery.body, delivery.headers, hook.secret);
  assert.equal(event.type, "key.created");
  assert.equal(event.data.key_id, key.id);
  assert.ok(!JSON.stringify(event).includes(key.secret), "no secret in a delivery");
  // The same with a string payload, a Fetch Headers object, the class form and the subpath export.
  assert.equal(verifyWebhook(delivery.body.toString(), new Headers(delivery.headers), hook.secret).type, "key.created");
  assert.equal(new WebhookVerifier(hook.secret).verify(delivery.body, delivery.headers).data.key_id, key.id);
  assert.equal(fromSubpath(delivery.body, delivery.headers, [hook.secret]).type, "key.created");

  const tampered = Buffer.from(delivery.body.toString().replace("key.created", "key.revoked"));
  assert.throws(() => verifyWebhook(tampered, delivery.headers, hook.secret), WebhookVerificationError);
  const other = "whsec_" + Buffer.alloc(32, 7).toString("base64");
  assert.throws(() => verifyWebhook(delivery.body, delivery.headers, other), WebhookVerificationError);
  assert.throws(() => verifyWebhook(delivery.body, { ...delivery.headers, "webhook-id": "msg_other" }, hook.secret), WebhookVerificationError);
  const ts = Number(delivery.headers["webhook-timestamp"]);
  assert.throws(() => verifyWebhook(delivery.body, delivery.headers, hook.secret, { now: ts + 301 }), /too old/);
  assert.equal(verifyWebhook(delivery.body, delivery.headers, hook.secret, { now: ts + 299 }).type, "key.created");
  assert.throws(() => verifyWebhook(delivery.body, {}, hook.secret), /missing/);

  const deliveries = await kw.webhooks.deliveries(hook.id);
  assert.ok(deliveries.items.some((d) => d.message_id === delivery.headers["webhook-id"]));

  // After a rotation both secrets sign; either verifies.
  const rotated = await kw.webhooks.rotateSecret(hook.id, { overlap: "1h" });
  await kw.keys.revoke(key.id);
  const revokedDelivery = await eventually(
    () => rx.received.find((d) => JSON.parse(d.body).type === "key.revoked" && JSON.parse(d.body).data?.key_id === key.id),
    20_000,
    "the key.revoked delivery",
  );
  assert.equal(revokedDelivery.headers["webhook-signature"].split(" ").length, 2);
  assert.equal(verifyWebhook(revokedDelivery.body, revokedDelivery.headers, hook.secret).type, "key.revoked");
  assert.equal(verifyWebhook(revokedDelivery.body, revokedDelivery.headers, rotated.secret).type, "key.revoked");
});

test("a key's callback (v1a, Ed25519, whpk_) verifies against the workspace's signing key", async (t) => {
  const kw = await client();
  const rx = await receiver();
  t.after(() => rx.close());
  const key = await kw.keys.create({ name: unique("callback"), callback_url: `${rx.url}/callback` });
  await kw.keys.update(key.id, { name: unique("callback-renamed") });
  const delivery = await eventually(() => rx.received.find((d) => d.url === "/callback"), 20_000, "a callback delivery");
  assert.match(delivery.headers["webhook-signature"], /^v1a,/);
  const { public_key } = await kw.webhooks.signingKey();
  assert.match(public_key, /^whpk_/);
  const event = verifyWebhook(delivery.body, delivery.headers, public_key);
  assert.equal(event.data.key_id, key.id);
  assert.throws(() => verifyWebhook(Buffer.concat([delivery.body, Buffer.from(" ")]), delivery.headers, public_key), WebhookVerificationError);
});

test("verifyWebhook follows the Standard Webhooks reference computation", () => {
  const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  const id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
  const now = 1614265330;
  const body = '{"test": 2432232314}';
  const sig = createHmac("sha256", Buffer.from("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "base64")).update(`${id}.${now}.${body}`).digest("base64");
  // The specification's own example signature for these inputs.
  assert.equal(sig, "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  const headers = { "webhook-id": id, "webhook-timestamp": String(now), "webhook-signature": `v1,bogus v1,${sig}` };
  assert.deepEqual(verifyWebhook(body, headers, secret, { now }), { test: 2432232314 });
});

after(async () => (await server()).stop());
