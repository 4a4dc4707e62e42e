// The same service with Fastify.
import Fastify from "fastify";
import { Keyward } from "@keyward/sdk";
import { keywardAuth } from "@keyward/sdk/fastify";

const app = Fastify();
const kw = new Keyward({ baseUrl: process.env.KEYWARD_URL });
app.get("/invoices", { preHandler: keywardAuth({ client: kw, permissions: "invoices.read" }) }, async (request) =>
  ({ invoices: [], key_id: request.keyward.key_id, permissions: request.keyward.permissions }));

const address = await app.listen({ port: Number(process.env.PORT ?? 3000), host: "127.0.0.1" });
console.log(`listening on ${address}`);
