// A gateway Worker in front of workerd's own D1 (tests only): it answers D1's REST routes
// in Cloudflare's envelope, so that vault-drift's D1 backend runs against real D1 semantics.
//   POST /client/v4/accounts/{account}/d1/database/{id}/query | /raw
//     {"sql", "params"} -> env.DB.prepare(sql).bind(...params).all(); a string of several
//       statements is cut into them and goes as env.DB.batch([...]), parameters bound to the
//       last, so that it answers one result per statement as D1's REST API does (workerd's
//       binding answers the last statement only, and refuses a placeholder before it)
//     {"batch": [{"sql", "params"}, ...]} -> env.DB.batch([...]) (atomic)
// Errors as D1's REST API answers them: another account 403 7403, a method the route does
// not have 404 7000, an unknown database 404 7404.
// Everything else is proxied to UPSTREAM (the simulated Access API), so one base URL serves
// both APIs, as Cloudflare does. Faults for the tests: POST /_gw/faults
//   {"status": 429|400|500, "code": 7500, "message": "...", "times": 1} answers the next
//   D1 request(s) with that error before touching the database;
//   {"fail_batch_at": n} makes the next batch fail at its n-th statement (D1 rolls it back);
//   {"lose_answers": n} answers the next n writes that changed rows with 500 "Network
//   connection lost" after D1 committed them (an answer lost on the way back).
let faults = { times: 0, fail_batch_at: null, lose_answers: 0 };
let upstream = ""; // the simulated Access API's base URL (…/client/v4), settable per test
const stats = { requests: 0, rows_read: 0, rows_written: 0 };
const ROUTE = /^\/client\/v4\/accounts\/([^/]+)\/d1\/database\/([^/]+)\/(query|raw)\/?$/;
const PARAMS_ON_LAST_ONLY =
  "D1_ERROR: When executing multiple SQL statements in a single call, only the last statement can have parameters.";

// The statements of a SQL string: cut at the semicolons outside quotes and comments (enough
// for the tests' SQL, which has no trigger bodies; SQLite's own tokenizer is not exposed).
function statements(sql) {
  const out = [];
  let current = "";
  let quote = null;
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i];
    current += c;
    if (quote) {
      if (c === quote) quote = null;
      continue;
    }
    if (c === "'" || c === '"' || c === "`") quote = c;
    else if (c === "[") quote = "]";
    else if (c === "-" && sql[i + 1] === "-") {
      const end = sql.indexOf("\n", i);
      current += sql.slice(i + 1, end < 0 ? sql.length : end);
      i = end < 0 ? sql.length : end - 1;
    } else if (c === ";") {
      if (current.slice(0, -1).trim()) out.push(current.trim());
      current = "";
    }
  }
  if (current.trim()) out.push(current.trim());
  return out;
}

// The answer to a request D1 has run: lost on the way back when a fault says so.
function answered(results) {
  if (faults.lose_answers > 0 && results.some((r) => (r.meta || {}).changes > 0)) {
    faults.lose_answers -= 1;
    return fail(500, 7500, "D1_ERROR: Network connection lost.");
  }
  return envelope(200, results);
}

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
      faults = { times: 0, fail_batch_at: null, lose_answers: 0, ...(await request.json()) };
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
    if (request.method !== "POST") return fail(404, 7000, "No route for that URI");
    if (route[1] !== env.ACCOUNT_ID) {
      return fail(403, 7403, "The given account is not valid or is not authorized to access this service");
    }
    if (route[2] !== env.DATABASE_ID) return fail(404, 7404, `The database ${route[2]} could not be found`);
    stats.requests += 1;
    const text = await request.text(); // read whole, so the connection stays usable after a fault
    if (faults.times > 0) {
      faults.times -= 1;
      const headers = faults.status === 429 ? { "retry-after": String(faults.retry_after || 1) } : {};
      return fail(faults.status || 400, faults.code || 7500, faults.message || "D1_ERROR: internal error", headers);
    }
    let body;
    try {
      body = JSON.parse(text);
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
        return answered(await Promise.all(results.map((r, i) => shaped(env, body.batch[i], r, raw))));
      }
      if (typeof body.sql !== "string") return fail(400, 7400, "The request is malformed: expected sql or batch");
      const several = statements(body.sql);
      if (several.length < 2) {
        const result = await env.DB.prepare(body.sql).bind(...(body.params || [])).all();
        return answered([await shaped(env, body, result, raw)]);
      }
      const last = several.length - 1;
      const items = several.map((sql, i) => ({ sql, params: i === last ? body.params || [] : [] }));
      let results;
      try {
        results = await env.DB.batch(items.map((s) => env.DB.prepare(s.sql).bind(...s.params)));
      } catch (error) {
        const text = String(error && error.message ? error.message : error);
        const misplaced = (body.params || []).length > 0 && /parameter bindings/.test(text);
        return fail(400, 7500, misplaced ? PARAMS_ON_LAST_ONLY : text);
      }
      return answered(await Promise.all(results.map((r, i) => shaped(env, items[i], r, raw))));
    } catch (error) {
      return fail(400, 7500, String(error && error.message ? error.message : error));
    }
  },
};
