// The same service with Hono on Node (@hono/node-server).
import { Hono } from "hono";
import { serve } from "@hono/node-server";
import { Keyward } from "@keyward/sdk";
import { keywardAuth } from "@keyward/sdk/hono";

const app = new Hono();
const kw = new Keyward({ baseUrl: process.env.KEYWARD_URL });
app.get("/invoices", keywardAuth({ client: kw, permissions: "invoices.read" }), (c) =>
  c.json({ invoices: [], key_id: c.get("keyward").key_id, permissions: c.get("keyward").permissions }));

serve({ fetch: app.fetch, port: Number(process.env.PORT ?? 3000), hostname: "127.0.0.1" }, (info) => {
  console.log(`listening on http://127.0.0.1:${info.port}`);
});
