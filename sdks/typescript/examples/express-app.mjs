// A tiny Express service protecting a route with Keyward (the held-out app).
// KEYWARD_URL=http://127.0.0.1:5399 PORT=3000 node examples/express-app.mjs
import express from "express";
import { Keyward } from "@keyward/sdk";
import { keywardAuth } from "@keyward/sdk/express";

const app = express();
const kw = new Keyward({ baseUrl: process.env.KEYWARD_URL });
app.get("/invoices", keywardAuth({ client: kw, permissions: "invoices.read" }), (req, res) => {
  res.json({ invoices: [], key_id: req.keyward.key_id, permissions: req.keyward.permissions });
});

const server = app.listen(Number(process.env.PORT ?? 3000), "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
