// vault-drift operator page: acts through the JSON API, then re-renders from server fragments.
// Data goes into the DOM with textContent only; HTML comes only from autoescaped templates.
// Without this script the page still works: actions are forms, details, settings and ignore
// are pages, filters are links. The script turns those into panels and dialogs in place.
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

  // The outcome of an action: in the card's panel, or, when the card left the list (it is
  // in sync now, or on another page), in the page's status line, which takes the focus.
  function report(panel, kind, ...children) {
    if (panel.isConnected) { show(panel, kind, ...children); return; }
    const line = document.getElementById("announce");
    line.textContent = children.map((c) => (typeof c === "string" ? c : c.textContent)).join(" ");
    line.focus();
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

  // Links that act in place (details, dialogs) are buttons to assistive technology.
  function enhance(root) {
    for (const link of root.querySelectorAll("a[data-action]")) {
      if (link.dataset.action === "page" && !link.closest("article[data-audience]")) continue;
      link.setAttribute("role", "button");
    }
  }

  // Where the keyboard focus was, to put it back on the same control once re-rendered.
  function focusKey() {
    const active = document.activeElement;
    if (!active || active === document.body) return null;
    const card = active.closest("article[data-audience]");
    return { id: active.id, card: card && card.id, action: active.dataset.action, text: active.textContent };
  }

  function restoreFocus(key) {
    if (!key || document.activeElement !== document.body) return;
    let target = key.id ? document.getElementById(key.id) : null;
    if (!target && key.card && key.action) {
      target = document.querySelector(`#${CSS.escape(key.card)} [data-action="${CSS.escape(key.action)}"]`);
    }
    if (target) target.focus();
  }

  // Replaces the live regions with fresh server-rendered ones (same filters: the URL's),
  // keeping the JS-owned parts ([data-keep]: result panels, open details) where they were.
  async function refresh() {
    if (!document.getElementById("drift-list")) return; // details, settings: nothing live
    const doc = await fragment(`/fragments/live${location.search}`);
    const menuOpen = document.querySelector('[data-action="toggle-alerts"]').getAttribute("aria-expanded") === "true";
    const inSync = document.getElementById("in-sync");
    const inSyncOpen = inSync ? inSync.open : null;
    const focus = focusKey();
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
      enhance(fresh);
      old.replaceWith(fresh);
    }
    const freshInSync = document.getElementById("in-sync");
    if (freshInSync && inSyncOpen !== null) freshInSync.open = inSyncOpen;
    if (menuOpen) toggleMenu(true);
    restoreFocus(focus);
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
    report(panel, bad ? "warn" : "ok", el("p", {}, "Sync done:"), el("ul", {}, ...data.results.map((r) => outcomeLine(r, false))));
  }

  const cardParts = (card) => ({
    audience: card.dataset.audience,
    panel: document.getElementById(`${card.id}-panel`),
    details: document.getElementById(`${card.id}-details`),
  });

  async function loadDetails(card, params) {
    const { audience, details } = cardParts(card);
    const query = new URLSearchParams(params || {});
    query.set("audience", audience);
    const doc = await fragment(`/fragments/details?${query}`);
    const body = document.importNode(doc.querySelector(".details-body"), true);
    details.replaceChildren(body);
    enhance(body);
  }

  async function toggleDetails(card, trigger) {
    const { details, panel } = cardParts(card);
    const opening = details.hidden || !trigger.getAttribute("aria-controls");
    card.querySelectorAll('[data-action="details"][aria-controls]').forEach((b) => b.setAttribute("aria-expanded", String(opening)));
    if (!opening) { details.hidden = true; return; }
    details.hidden = false;
    await run(panel, async () => { await loadDetails(card); panel.replaceChildren(); });
    const heading = details.querySelector("h4");
    if (heading && !trigger.getAttribute("aria-controls")) { // "and N more": go to the list
      heading.setAttribute("tabindex", "-1");
      heading.focus();
    }
  }

  // The settings and ignore dialogs; focus goes back to what opened them.
  let opener = null;

  function openDialog(dialog, trigger, first) {
    opener = trigger;
    dialog.showModal();
    (first || dialog.querySelector("input:not([type=hidden]), select, button")).focus();
  }

  function openIgnore(audience, trigger) {
    const dialog = document.getElementById("ignore-dialog");
    const form = dialog.querySelector("form");
    form.reset();
    form.elements.audience.value = audience;
    dialog.querySelector(".ignore-name").textContent = audience;
    openDialog(dialog, trigger, form.elements.duration);
  }

  document.addEventListener("close", (event) => {
    if (event.target.tagName === "DIALOG" && opener && opener.isConnected) opener.focus();
  }, true);

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
        report(panel, item.status === "error" ? "warn" : "ok", `${audience}: checked, now ${item.status}${item.error_message ? ` (${item.error_message})` : ""}.`);
      });
    },
    "create-group": (card) => {
      const { audience, panel } = cardParts(card);
      return run(panel, async () => {
        const item = await api("POST", "/iam/drift/groups", { audience });
        await refresh();
        report(panel, "ok", `${audience}: Cloudflare group created; status now ${item.status}.`);
      });
    },
    unignore: (card) => {
      const { audience, panel } = cardParts(card);
      return run(panel, async () => {
        await api("DELETE", `/iam/drift/ignore/${encodeURIComponent(audience)}`);
        await refresh();
        report(panel, "ok", `${audience}: no longer ignored.`);
      });
    },
    unexempt: (card, trigger) => {
      const { audience, panel } = cardParts(card);
      const email = trigger.closest("form").elements.email.value;
      return run(panel, async () => {
        await api("DELETE", `/iam/drift/${encodeURIComponent(audience)}/exemptions/${encodeURIComponent(email)}`);
        await refresh();
        report(panel, "ok", `${audience}: the exemption of ${email} has ended; it drifts again from now.`);
      });
    },
    details: (card, trigger) => toggleDetails(card, trigger),
    page: (card, trigger) => run(cardParts(card).panel, async () => {
      const label = trigger.textContent;
      await loadDetails(card, new URL(trigger.href).searchParams);
      cardParts(card).panel.replaceChildren();
      const links = [...cardParts(card).details.querySelectorAll('[data-action="page"]')];
      const again = links.find((a) => a.textContent === label) || links[0];
      if (again) again.focus();
    }),
  };

  document.addEventListener("click", (event) => {
    const trigger = event.target.closest("[data-action]");
    if (!trigger) {
      if (!event.target.closest("#alerts")) toggleMenu(false);
      return;
    }
    if (trigger.disabled) return;
    const action = trigger.dataset.action;
    if (action === "toggle-alerts") { toggleMenu(); return; }
    if (action === "close-dialog") { trigger.closest("dialog").close(); return; }
    if (action === "settings") {
      const dialog = document.getElementById("settings-dialog");
      if (!dialog) return; // the settings page itself: follow the link
      event.preventDefault();
      openDialog(dialog, trigger);
      return;
    }
    if (action === "ignore") {
      if (!document.getElementById("ignore-dialog")) return;
      event.preventDefault();
      toggleMenu(false);
      openIgnore(trigger.dataset.audience, trigger);
      return;
    }
    if (action === "fix-all") {
      event.preventDefault();
      const panel = document.getElementById("fixall-panel");
      run(panel, () => preview(panel, { all: true }, false));
      return;
    }
    const card = trigger.closest("article[data-audience]");
    if (card && cardActions[action]) {
      event.preventDefault();
      cardActions[action](card, trigger);
    }
  });

  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") toggleMenu(false);
    const link = event.target.closest && event.target.closest('a[role="button"]');
    if (link && event.key === " ") { event.preventDefault(); link.click(); }
  });

  // Forms inside dialogs go through the API; elsewhere (their own pages) they post as they are.
  document.addEventListener("submit", (event) => {
    const form = event.target;
    const dialog = form.closest("dialog");
    if (!dialog) return;
    event.preventDefault();
    if (form.id === "settings-form") { saveSettings(form); return; }
    if (form.id !== "ignore-form") return;
    const audience = form.elements.audience.value;
    const reason = form.elements.reason.value.trim();
    const card = document.querySelector(`article[data-audience="${CSS.escape(audience)}"]`);
    const panel = card ? cardParts(card).panel : document.getElementById("fixall-panel");
    if (!reason) { form.elements.reason.setAttribute("aria-invalid", "true"); form.elements.reason.focus(); return; }
    dialog.close();
    run(panel, async () => {
      const item = await api("POST", "/iam/drift/ignore", { audience, duration: form.elements.duration.value, reason });
      await refresh();
      const text = `${audience}: ignored until ${item.ignored_until} — ${item.ignore_reason}`;
      report(panel, "ok", text);
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

  enhance(document);

  setInterval(() => {
    const active = document.activeElement;
    if (busy || document.hidden || (active && active.matches("input, select, textarea"))) return;
    refresh().catch((error) => announce(`Refresh failed: ${error.message}`));
  }, REFRESH_MS);
})();
