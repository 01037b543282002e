// Alerts, live: the shared stream (live.js) keeps the open ones; closed ones come from the
// API on demand. Each alert moves one step at a time: acknowledge, handle, resolve, review.

import { api } from "../api.js";
import { ago, badge, duration, h, number, replace, table, time } from "../dom.js";

const NEXT = {
  raised: [["acknowledged", "Acknowledge"]],
  acknowledged: [
    ["handling", "Start handling"],
    ["resolved", "Resolve"],
  ],
  handling: [["resolved", "Resolve"]],
  resolved: [["reviewed", "Review"]],
  reviewed: [],
};

function trail(alert) {
  if (!alert.trail) return h("p", { class: "quiet" }, "Loading the trail…");
  return table(
    ["When", "Step", "State", "Colour", "By", "Note"],
    alert.trail.map((t) =>
      h(
        "tr",
        { class: t.action === "escalated" || t.action === "deadline_missed" ? "escalation" : "", "data-action": t.action },
        h("td", {}, time(t.at_ms)),
        h("td", {}, t.action.replaceAll("_", " ")),
        h("td", {}, badge(t.state)),
        h("td", {}, h("span", { class: `swatch colour-${t.colour}` }), ` ${t.colour}`),
        h("td", {}, t.by),
        h("td", {}, t.note),
      ),
    ),
    { class: "trail" },
  );
}

export async function render(main, _params, ctx) {
  const live = ctx.live;
  const showClosed = ctx.query.get("closed") === "1";
  const expanded = new Set();
  const details = new Map();
  const flash = new Set();
  const notes = new Map();
  const list = h("div", { id: "alert-list" });
  const message = h("p", { class: "message", role: "status" });
  let closed = [];
  const canAct = ctx.me.role !== "viewer";

  async function act(alert, to) {
    try {
      const updated = await api(`/alerts/${alert.id}/transitions`, {
        method: "POST",
        body: { to, note: notes.get(alert.id) || "" },
      });
      notes.delete(alert.id);
      details.set(updated.id, updated);
      live.apply(updated);
      replace(message, `Alert ${alert.id} is now ${updated.state}.`);
      message.className = "message ok";
    } catch (error) {
      replace(message, `Alert ${alert.id}: ${error.detail ?? error}`);
      message.className = "message error";
    }
    draw();
  }

  async function toggle(alert) {
    if (expanded.has(alert.id)) expanded.delete(alert.id);
    else {
      expanded.add(alert.id);
      details.set(alert.id, await api(`/alerts/${alert.id}`));
    }
    draw();
  }

  function row(alert) {
    const detail = details.get(alert.id) && details.get(alert.id).updated_ms >= alert.updated_ms ? details.get(alert.id) : alert;
    const note = h("input", { type: "text", placeholder: "note", "aria-label": `note for alert ${alert.id}`, value: notes.get(alert.id) || "" });
    note.addEventListener("input", () => notes.set(alert.id, note.value));
    const deadline = alert.state === "raised" && alert.ack_deadline_ms ? ` · escalates in ${duration((alert.ack_deadline_ms - Date.now()) / 1000)}` : "";
    return h(
      "article",
      { class: `alert colour-edge-${alert.colour}${flash.has(alert.id) ? " flash" : ""}`, "data-alert": alert.id, "data-colour": alert.colour, "data-state": alert.state },
      h(
        "header",
        {},
        h("span", { class: `swatch colour-${alert.colour}` }),
        h("b", {}, ` ${alert.colour.toUpperCase()} `),
        `#${alert.id} ${alert.kind === "blind_spot" ? "blind spot at" : "at"} ${alert.point} `,
        badge(alert.state),
        h("span", { class: "quiet" }, ` ${alert.place}`),
      ),
      h(
        "p",
        {},
        `${alert.device} ${alert.metric} = ${number(alert.value)} · raised ${ago(alert.raised_ms)} by ${alert.source}`,
        ` · told: ${alert.tiers.join(", ") || "nobody yet"}`,
        alert.peak_colour !== alert.colour ? ` · peak ${alert.peak_colour}` : "",
        deadline,
      ),
      h(
        "div",
        { class: "actions" },
        canAct && NEXT[alert.state].length ? note : null,
        canAct ? NEXT[alert.state].map(([to, text]) => h("button", { type: "button", "data-to": to, onclick: () => act(alert, to) }, text)) : null,
        h("button", { type: "button", class: "link", onclick: () => toggle(alert) }, expanded.has(alert.id) ? "Hide trail" : "Trail"),
      ),
      expanded.has(alert.id) ? trail(detail) : null,
    );
  }

  function draw() {
    if (!ctx.current()) return;
    const open = live.openAlerts();
    const closedNow = showClosed ? closed.filter((a) => !(live.alerts.get(a.id)?.open)) : [];
    const focused = document.activeElement;
    const refocus = focused && focused.closest && focused.closest("[data-alert]") && focused.tagName === "INPUT" ? focused.closest("[data-alert]").dataset.alert : null;
    replace(
      list,
      h("h2", {}, `Open (${open.length})`),
      open.length ? open.map(row) : h("p", { class: "quiet" }, "No open alerts."),
      showClosed ? [h("h2", {}, `Closed (${closedNow.length} most recent)`), closedNow.map(row)] : null,
    );
    if (refocus) list.querySelector(`[data-alert="${refocus}"] input`)?.focus();
  }

  const onChange = (event) => {
    const { alert, fresh } = event.detail;
    if (alert && fresh) {
      flash.add(alert.id);
      setTimeout(() => {
        flash.delete(alert.id);
      }, 4000);
    }
    if (alert && expanded.has(alert.id) && alert.trail) details.set(alert.id, alert);
    draw();
  };
  live.addEventListener("change", onChange);
  ctx.onCleanup(() => live.removeEventListener("change", onChange));
  if (showClosed) closed = await api("/alerts", { params: { open: false, limit: 50 } });
  if (!ctx.current()) return;
  replace(
    main,
    h("h1", {}, "Alerts ", h("span", { class: "quiet" }, ctx.me.place ? `at or below ${ctx.me.place}` : "everywhere")),
    h("p", {}, showClosed ? h("a", { href: "#/alerts" }, "Hide closed") : h("a", { href: "#/alerts?closed=1" }, "Show closed")),
    message,
    list,
  );
  draw();
  ctx.every(10000, draw);
}
