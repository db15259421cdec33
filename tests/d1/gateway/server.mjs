// Starts workerd's D1 behind gateway.mjs on loopback (tests only), printing one JSON line:
// {"url": "http://127.0.0.1:PORT"}. Arguments: a JSON object of
// {port, persist, account_id, database_id, token, upstream}.
import { Miniflare } from "miniflare";
import { fileURLToPath } from "node:url";
import path from "node:path";

const options = JSON.parse(process.argv[2] || "{}");
const here = path.dirname(fileURLToPath(import.meta.url));
const mf = new Miniflare({
  modules: true,
  scriptPath: path.join(here, "gateway.mjs"),
  compatibilityDate: "2025-01-01",
  d1Databases: { DB: options.database_id },
  d1Persist: options.persist,
  bindings: {
    TOKEN: options.token,
    ACCOUNT_ID: options.account_id,
    DATABASE_ID: options.database_id,
    UPSTREAM: options.upstream || "",
  },
  host: "127.0.0.1",
  port: options.port || 0,
});
const url = await mf.ready;
console.log(JSON.stringify({ url: url.href.replace(/\/$/, "") }));
const stop = async () => {
  await mf.dispose();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
