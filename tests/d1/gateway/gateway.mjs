// A gateway Worker in front of workerd's own D1 (tests only): it answers D1's REST routes
// in Cloudflare's envelope, so that vault-drift's D1 backend runs against real D1 semantics.
//   POST /client/v4/accounts/{account}/d1/database/{id}/query | /raw
//     {"sql", "params"} -> env.DB.prepare(sql).bind(...params).all()
//     {"batch": [{"sql", "params"}, ...]} -> env.DB.batch([...]) (atomic)
// Everything else is proxied to UPSTREAM (the simulated Access API), so one base URL serves
// both APIs, as Cloudflare does. Faults for the tests: POST /_gw/faults
//   {"status": 429|400|500, "code": 7500, "message": "...", "times": 1} answers the next
//   D1 request(s) with that error before touching the database;
//   {"fail_batch_at": n} makes the next batch fail at its n-th statement (D1 rolls it back).
let faults = { times: 0, fail_batch_at: null };
let upstream = ""; // the simulated Access API's base URL (…/client/v4), settable per test
const stats = { requests: 0, rows_read: 0, rows_written: 0 };
const ROUTE = /^\/client\/v4\/accounts\/([^/]+)\/d1\/database\/([^/]+)\/(query|raw)\/?$/;

function envelope(status, result, errors = []) {
  return new Response(JSON.stringify({ success: errors.length === 0, errors, messages: [], result }), {
    status,
    headers: { "content-type": "application/json" },
  });
}
const fail = (status, code, message, headers = {}) => {
  const response = envelope(status, null, [{ code, message }]);
  for (const [k, v] of Object.entries(headers)) response.headers.set(k, v);
  return response;
};

// The binding answers rows as objects; /raw answers columns and arrays. An empty answer
// still names its columns on D1: ask the binding for them (a read, so asking again is safe).
async function shaped(env, statement, result, raw) {
  const rows = result.results || [];
  const meta = result.meta || {};
  stats.rows_read += meta.rows_read || 0;
  stats.rows_written += meta.rows_written || 0;
  if (!raw) return { results: rows, success: true, meta };
  let columns = rows.length ? Object.keys(rows[0]) : [];
  if (!rows.length && /^\s*(select|with|pragma)\b/i.test(statement.sql || "")) {
    const [names] = await env.DB.prepare(statement.sql).bind(...(statement.params || [])).raw({ columnNames: true });
    columns = names || [];
  }
  return { results: { columns, rows: rows.map((r) => columns.map((c) => r[c])) }, success: true, meta };
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/_gw/faults" && request.method === "POST") {
      faults = { times: 0, fail_batch_at: null, ...(await request.json()) };
      return Response.json(faults);
    }
    if (url.pathname === "/_gw/stats") return Response.json(stats);
    if (url.pathname === "/_gw/upstream" && request.method === "POST") {
      upstream = (await request.json()).url || "";
      return Response.json({ upstream });
    }
    const route = url.pathname.match(ROUTE);
    if (!route) {
      const target = upstream || env.UPSTREAM;
      if (!target) return fail(404, 7003, `Could not route to ${url.pathname}`);
      return fetch(new Request(target + url.pathname.replace(/^\/client\/v4/, "") + url.search, request));
    }
    if (request.headers.get("Authorization") !== `Bearer ${env.TOKEN}`) {
      return fail(403, 10000, "Authentication error");
    }
    if (route[1] !== env.ACCOUNT_ID) return fail(404, 7003, `Could not route to ${url.pathname}`);
    if (route[2] !== env.DATABASE_ID) return fail(404, 7404, `The database ${route[2]} could not be found`);
    if (request.method !== "POST") return fail(405, 10405, `method ${request.method} not allowed`);
    stats.requests += 1;
    if (faults.times > 0) {
      faults.times -= 1;
      const headers = faults.status === 429 ? { "retry-after": String(faults.retry_after || 1) } : {};
      return fail(faults.status || 400, faults.code || 7500, faults.message || "D1_ERROR: internal error", headers);
    }
    let body;
    try {
      body = await request.json();
    } catch {
      return fail(400, 7400, "The request is malformed: body is not JSON");
    }
    const raw = route[3] === "raw";
    try {
      if (Array.isArray(body.batch)) {
        const writes = body.batch.some((s) => !/^\s*select\b/i.test(s.sql || ""));
        let failAt = null;
        if (faults.fail_batch_at !== null && writes) {
          failAt = (faults.fail_batch_at + body.batch.length) % body.batch.length;
          faults.fail_batch_at = null;
        }
        const statements = body.batch.map((s, i) =>
          i === failAt
            ? env.DB.prepare("INSERT INTO _vault_drift_no_such_table VALUES (1)")
            : env.DB.prepare(s.sql).bind(...(s.params || [])),
        );
        const results = await env.DB.batch(statements);
        return envelope(200, await Promise.all(results.map((r, i) => shaped(env, body.batch[i], r, raw))));
      }
      if (typeof body.sql !== "string") return fail(400, 7400, "The request is malformed: expected sql or batch");
      const result = await env.DB.prepare(body.sql).bind(...(body.params || [])).all();
      return envelope(200, [await shaped(env, body, result, raw)]);
    } catch (error) {
      return fail(400, 7500, String(error && error.message ? error.message : error));
    }
  },
};
