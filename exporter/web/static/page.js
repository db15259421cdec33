// vault-drift operator page: acts through the JSON API, then re-renders from server fragments.
// Data goes into the DOM with textContent only; HTML comes only from autoescaped templates.
"use strict";
(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const canAct = document.body.dataset.role === "admin";
  const REFRESH_MS = 30000;
  const LIVE = ["alerts", "widget", "drift-list"];
  let busy = 0;

  class ApiFailure extends Error {
    constructor(status, data) {
      super(describe(status, data));
      this.status = status;
      this.data = data;
    }
  }

  function describe(status, data) {
    if (status === 401) return "Your session has expired: log in again.";
    if (!data || !data.error) return `Request failed (HTTP ${status}).`;
    let detail = data.detail;
    if (Array.isArray(detail)) detail = detail.map((d) => d.msg || String(d)).join("; ");
    else if (detail && typeof detail === "object") {
      detail = Object.entries(detail).map(([k, v]) => `${k}: ${v}`).join("; ");
    }
    return detail ? `${data.error}: ${detail}` : data.error;
  }

  async function api(method, path, payload) {
    const headers = { Accept: "application/json", "X-Vault-Drift-Page": "1" };
    const init = { method, headers, credentials: "same-origin" };
    if (method !== "GET") {
      headers["X-CSRF-Token"] = csrf;
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload || {});
    }
    const response = await fetch(path, init);
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    if (!response.ok) throw new ApiFailure(response.status, data);
    return data;
  }

  async function fragment(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (!response.ok) throw new ApiFailure(response.status, null);
    return new DOMParser().parseFromString(await response.text(), "text/html");
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    node.append(...children); // strings become text nodes
    return node;
  }

  function button(label, onClick, cls) {
    const node = el("button", { type: "button", class: cls || "" }, label);
    node.addEventListener("click", onClick);
    return node;
  }

  function show(panel, kind, ...children) {
    panel.replaceChildren(el("div", { class: `msg msg-${kind}` }, ...children));
  }

  const announce = (text) => { document.getElementById("announce").textContent = text; };

  // Runs one action: spinner in the panel, the card marked busy, errors shown in the panel.
  async function run(panel, work) {
    const scope = panel.closest("article, section") || document.body;
    busy += 1;
    scope.setAttribute("aria-busy", "true");
    panel.replaceChildren(el("span", { class: "spinner", role: "status" }, "Working…"));
    try {
      await work();
    } catch (error) {
      show(panel, "error", error.message);
      if (error.status === 401) panel.append(el("a", { href: "/login" }, "Log in"));
    } finally {
      busy -= 1;
      scope.removeAttribute("aria-busy");
    }
  }

  // Replaces the live regions with fresh server-rendered ones, keeping the JS-owned
  // parts ([data-keep]: result panels, open details, ignore forms) where they were.
  async function refresh() {
    const doc = await fragment("/fragments/live");
    const menuOpen = document.querySelector('[data-action="toggle-alerts"]').getAttribute("aria-expanded") === "true";
    for (const id of LIVE) {
      const old = document.getElementById(id);
      const parsed = doc.getElementById(id);
      if (!old || !parsed) continue;
      const fresh = document.importNode(parsed, true);
      for (const kept of old.querySelectorAll("[data-keep][id]")) {
        const slot = fresh.querySelector(`#${CSS.escape(kept.id)}`);
        if (slot) slot.replaceWith(kept);
      }
      for (const toggle of fresh.querySelectorAll("[aria-controls]")) {
        const target = fresh.querySelector(`#${CSS.escape(toggle.getAttribute("aria-controls"))}`);
        if (target) toggle.setAttribute("aria-expanded", String(!target.hidden));
      }
      old.replaceWith(fresh);
    }
    if (menuOpen) toggleMenu(true);
  }

  function outcomeLine(result, dry) {
    const verb = dry ? ["would add", "would remove"] : ["added", "removed"];
    const names = (list) => (list.length > 10 ? `${list.slice(0, 10).join(", ")} and ${list.length - 10} more` : list.join(", "));
    const parts = [];
    if (result.added.length) parts.push(`${verb[0]} ${result.added.length} (${names(result.added)})`);
    if (result.removed.length) parts.push(`${verb[1]} ${result.removed.length} (${names(result.removed)})`);
    let text = parts.join("; ") || "nothing to change";
    if (result.result === "blocked") text = `blocked: ${result.reason}`;
    if (result.result === "error") text = `error: ${result.reason}`;
    return el("li", { class: `result-${result.result}` }, el("strong", {}, result.audience), `: ${text}`);
  }

  // Sync Now / Fix All: a dry run first, then Confirm (or Force when a guard blocks).
  async function preview(panel, target, force) {
    const data = await api("POST", "/iam/drift/sync", { ...target, dry_run: true, force });
    if (!data.results.length) { show(panel, "info", "Nothing to sync: no audience is drifting."); return; }
    const changes = data.results.some((r) => r.result === "synced");
    const blocked = data.results.some((r) => r.result === "blocked");
    const actions = el("div", { class: "actions" });
    if (changes) {
      actions.append(button(force ? "Confirm forced sync" : "Confirm sync", () => run(panel, () => apply(panel, target, force)), force ? "danger" : "primary"));
    }
    if (blocked && !force && canAct) {
      actions.append(button("Force…", () => run(panel, () => preview(panel, target, true)), "danger"));
    }
    actions.append(button(changes ? "Cancel" : "Close", () => panel.replaceChildren()));
    const title = force ? "Dry run (forced: guards off):" : "Dry run (nothing changed yet):";
    show(panel, blocked ? "warn" : "info", el("p", {}, title), el("ul", {}, ...data.results.map((r) => outcomeLine(r, true))), actions);
    actions.querySelector("button").focus();
  }

  async function apply(panel, target, force) {
    const data = await api("POST", "/iam/drift/sync", { ...target, force });
    const bad = data.results.some((r) => r.result === "blocked" || r.result === "error");
    await refresh();
    show(panel, bad ? "warn" : "ok", el("p", {}, "Sync done:"), el("ul", {}, ...data.results.map((r) => outcomeLine(r, false))));
  }

  const cardParts = (card) => ({
    audience: card.dataset.audience,
    panel: document.getElementById(`${card.id}-panel`),
    details: document.getElementById(`${card.id}-details`),
  });

  async function loadDetails(card, offset) {
    const { audience, details } = cardParts(card);
    const query = new URLSearchParams({ audience, offset: String(offset) });
    const doc = await fragment(`/fragments/details?${query}`);
    details.replaceChildren(document.importNode(doc.querySelector(".details-body"), true));
  }

  async function toggleDetails(card, trigger) {
    const { details, panel } = cardParts(card);
    const opening = details.hidden;
    card.querySelectorAll('[data-action="details"][aria-controls]').forEach((b) => b.setAttribute("aria-expanded", String(opening)));
    if (!opening && trigger.getAttribute("aria-controls")) { details.hidden = true; return; }
    details.hidden = false;
    await run(panel, async () => { await loadDetails(card, 0); panel.replaceChildren(); });
  }

  function toggleMenu(open) {
    const toggle = document.querySelector('[data-action="toggle-alerts"]');
    const menu = document.getElementById("alerts-menu");
    const show = open === undefined ? menu.hidden : open;
    menu.hidden = !show;
    toggle.setAttribute("aria-expanded", String(show));
  }

  const cardActions = {
    sync: (card) => run(cardParts(card).panel, () => preview(cardParts(card).panel, { audience: card.dataset.audience }, false)),
    retry: (card) => {
      const { audience, panel } = cardParts(card);
      return run(panel, async () => {
        const item = await api("POST", "/iam/drift/check", { audience });
        await refresh();
        show(panel, item.status === "error" ? "warn" : "ok", `Checked: now ${item.status}${item.error_message ? ` (${item.error_message})` : ""}.`);
      });
    },
    "create-group": (card) => {
      const { audience, panel } = cardParts(card);
      return run(panel, async () => {
        const item = await api("POST", "/iam/drift/groups", { audience });
        await refresh();
        show(panel, "ok", `Cloudflare group created; status now ${item.status}.`);
      });
    },
    ignore: (card, trigger) => {
      const form = document.getElementById(`${card.id}-ignore`);
      form.hidden = !form.hidden;
      trigger.setAttribute("aria-expanded", String(!form.hidden));
      if (!form.hidden) form.querySelector("select").focus();
    },
    unignore: (card) => {
      const { audience, panel } = cardParts(card);
      return run(panel, async () => {
        await api("DELETE", `/iam/drift/ignore/${encodeURIComponent(audience)}`);
        await refresh();
        show(panel, "ok", "No longer ignored.");
      });
    },
    details: (card, trigger) => toggleDetails(card, trigger),
    page: (card, trigger) => run(cardParts(card).panel, async () => {
      await loadDetails(card, Number(trigger.dataset.offset));
      cardParts(card).panel.replaceChildren();
    }),
  };

  document.addEventListener("click", (event) => {
    const trigger = event.target.closest("button[data-action]");
    if (!trigger) {
      if (!event.target.closest("#alerts")) toggleMenu(false);
      return;
    }
    const action = trigger.dataset.action;
    if (action === "toggle-alerts") { toggleMenu(); return; }
    if (action === "fix-all") {
      const panel = document.getElementById("fixall-panel");
      run(panel, () => preview(panel, { all: true }, false));
      return;
    }
    const card = trigger.closest("article[data-audience]");
    if (card && cardActions[action]) cardActions[action](card, trigger);
  });

  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") toggleMenu(false);
  });

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.id === "settings-form") { event.preventDefault(); saveSettings(form); return; }
    if (!form.classList.contains("ignore-form")) return;
    event.preventDefault();
    const card = form.closest("article[data-audience]");
    const { audience, panel } = cardParts(card);
    const reason = form.elements.reason.value.trim();
    if (!reason) { show(panel, "error", "Give a reason for ignoring this drift."); form.elements.reason.focus(); return; }
    run(panel, async () => {
      const item = await api("POST", "/iam/drift/ignore", { audience, duration: form.elements.duration.value, reason });
      form.hidden = true;
      await refresh();
      show(panel, "ok", `Ignored until ${item.ignored_until} — ${item.ignore_reason}`);
    });
  });

  // Durations as the API's settings want them (seconds), written like 30s, 15m, 1h, 1d.
  function parseDuration(text) {
    const value = text.trim().toLowerCase();
    if (/^\d+$/.test(value)) return Number(value);
    if (!/^(\d+\s*[smhd]\s*)+$/.test(value)) return null;
    const units = { s: 1, m: 60, h: 3600, d: 86400 };
    let total = 0;
    for (const [, n, unit] of value.matchAll(/(\d+)\s*([smhd])/g)) total += Number(n) * units[unit];
    return total;
  }

  function formatDuration(seconds) {
    if (seconds >= 3600 && seconds % 3600 === 0) return `${seconds / 3600}h`;
    if (seconds >= 60 && seconds % 60 === 0) return `${seconds / 60}m`;
    return `${seconds}s`;
  }

  function saveSettings(form) {
    const panel = document.getElementById("settings-panel");
    const fieldError = (name, text) => {
      const slot = form.querySelector(`[data-error-for="${name}"]`);
      if (slot) slot.textContent = text;
      if (form.elements[name]) form.elements[name].setAttribute("aria-invalid", text ? "true" : "false");
    };
    const changes = { auto_sync: form.elements.auto_sync.value };
    let invalid = false;
    for (const input of form.querySelectorAll("[data-duration]")) {
      const name = input.name;
      const seconds = parseDuration(input.value);
      fieldError(name, seconds === null ? "write a duration like 30s, 15m, 1h or 1d" : "");
      if (seconds === null) invalid = true; else changes[name] = seconds;
    }
    fieldError("auto_sync", "");
    if (invalid) { show(panel, "error", "Some settings are not valid: see the messages above."); return; }
    run(panel, async () => {
      try {
        const saved = await api("PUT", "/iam/drift/settings", changes);
        for (const name of Object.keys(changes)) {
          if (name !== "auto_sync") form.elements[name].value = formatDuration(saved[name]);
        }
        show(panel, "ok", "Settings saved.");
      } catch (error) {
        const detail = error.data && error.data.detail;
        if (error.status === 422 && detail && !Array.isArray(detail) && typeof detail === "object") {
          for (const [name, text] of Object.entries(detail)) fieldError(name, text);
        }
        throw error;
      }
      await refresh();
    });
  }

  setInterval(() => {
    const active = document.activeElement;
    if (busy || document.hidden || (active && active.matches("input, select, textarea"))) return;
    refresh().catch((error) => announce(`Refresh failed: ${error.message}`));
  }, REFRESH_MS);
})();
