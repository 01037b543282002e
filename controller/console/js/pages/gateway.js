// One gateway: its devices (state, last value), buffer and heartbeat, config drift,
// commands (with buttons for the built-in ones) and its health history.

import { api } from "../api.js";
import { stateStrip } from "../chart.js";
import { ago, badge, bytes, card, duration, h, keyValues, lastValue, number, replace, table, time } from "../dom.js";

const REFRESH_MS = 3000;

function deviceRows(gateway, devices, health, send) {
  return devices.map((d) => {
    const reported = health?.devices?.[d.name];
    return h(
      "tr",
      { "data-device": d.id },
      h("td", {}, h("a", { href: `#/device/${d.id}` }, d.name), h("div", { class: "quiet" }, d.family ?? "")),
      h("td", {}, badge(d.health_state), d.maintenance ? " (maintenance)" : ""),
      h("td", {}, d.health_reason ?? ""),
      h("td", {}, lastValue(d)),
      h("td", {}, ago(d.last_ts_ms)),
      h("td", {}, reported ? `${reported.reads_ok} ok / ${reported.reads_failed} failed` : "–", reported?.last_error ? h("div", { class: "quiet" }, reported.last_error) : null),
      send
        ? h(
            "td",
            { class: "actions" },
            h("button", { type: "button", onclick: () => send("poll-now", { device: d.name }) }, "Poll"),
            h(
              "button",
              { type: "button", onclick: () => send("maintenance", { device: d.name, on: !d.maintenance }) },
              d.maintenance ? "End maintenance" : "Maintenance",
            ),
          )
        : null,
    );
  });
}

function bufferCard(gateway) {
  const health = gateway.health;
  if (!health) return card("Buffer and heartbeat", h("p", { class: "quiet" }, "No heartbeat yet."));
  const dropped = Object.entries(health.dropped || {}).map(([why, n]) => `${n} ${why}`).join(", ");
  return card(
    "Buffer and heartbeat",
    keyValues([
      ["Buffered readings", h("span", { "data-field": "buffer_rows" }, number(health.buffer_rows, 0))],
      ["Buffer size", bytes(health.buffer_bytes)],
      ["Oldest unsent", h("span", { "data-field": "oldest_unsent_age_s" }, duration(health.oldest_unsent_age_s))],
      ["Dropped", dropped || "none"],
      ["Last heartbeat", `${ago(gateway.last_heartbeat_ms)} (every ${duration(health.heartbeat_interval_s)})`],
      ["Clock skew", gateway.clock_skew_ms === null ? "–" : `${number(gateway.clock_skew_ms, 0)} ms`],
      ["Uptime", duration(health.uptime_s)],
      ["Session / last seq", `${health.session} / ${health.last_seq}`],
      ["Versions", Object.entries(health.versions || {}).map(([k, v]) => `${k} ${v}`).join(", ") || gateway.agent_version || "–"],
    ]),
  );
}

function configCard(config, send) {
  const desired = config.desired;
  return card(
    "Config",
    keyValues([
      ["Desired", desired ? `version ${desired.version} by ${desired.actor}, ${ago(desired.created_ms)}` : "none set"],
      ["Desired hash", desired ? h("code", {}, desired.hash.slice(0, 12)) : "–"],
      ["Reported hash", config.reported_hash ? h("code", {}, config.reported_hash.slice(0, 12)) : "not reported"],
      ["Drift", badge(config.drift, config.drift.replace("_", " "))],
    ]),
    send && desired
      ? h("button", { type: "button", onclick: () => send("push-config") }, `Push version ${desired.version}`)
      : null,
  );
}

function commandForms(devices, send) {
  const names = devices.map((d) => h("option", { value: d.name }, d.name));
  const device = h("select", { "aria-label": "device" }, names);
  const interval = h("input", { type: "number", min: "0.1", step: "0.1", value: "5", "aria-label": "interval in seconds" });
  const from = h("input", { type: "number", min: "1", placeholder: "from seq", "aria-label": "from seq" });
  const to = h("input", { type: "number", min: "1", placeholder: "to seq", "aria-label": "to seq" });
  return h(
    "div",
    { class: "command-buttons" },
    h("button", { type: "button", "data-command": "ping", onclick: () => send("ping") }, "Ping"),
    h("button", { type: "button", "data-command": "poll-now", onclick: () => send("poll-now") }, "Poll all now"),
    h(
      "button",
      { type: "button", "data-command": "restart", onclick: () => confirm("Restart the agent on this gateway?") && send("restart") },
      "Restart agent",
    ),
    h(
      "span",
      { class: "inline-form" },
      device,
      interval,
      h("button", { type: "button", onclick: () => send("set-interval", { device: device.value, interval_s: Number(interval.value) }) }, "Set poll interval (s)"),
    ),
    h(
      "span",
      { class: "inline-form" },
      from,
      to,
      h("button", { type: "button", onclick: () => send("replay", { from_seq: Number(from.value), to_seq: Number(to.value) }) }, "Replay"),
    ),
  );
}

function commandRows(commands) {
  return commands.map((c) =>
    h(
      "tr",
      { "data-command-id": c.id },
      h("td", {}, time(c.created_ms)),
      h("td", {}, c.type),
      h("td", {}, h("code", {}, Object.keys(c.args).length ? JSON.stringify(c.args).slice(0, 80) : "")),
      h("td", {}, badge(c.state)),
      h("td", {}, c.detail),
      h("td", {}, c.actor),
      h("td", {}, c.finished_ms ? duration((c.finished_ms - c.created_ms) / 1000) : "–"),
    ),
  );
}

function historyRows(transitions) {
  return transitions.map((t) =>
    h("tr", {}, h("td", {}, time(t.at_ms)), h("td", {}, badge(t.from_state), " → ", badge(t.to_state)), h("td", {}, t.reason)),
  );
}

export async function render(main, [gatewayId], ctx) {
  const path = `/gateways/${encodeURIComponent(gatewayId)}`;
  const canOperate = ctx.me.role !== "viewer";
  const message = h("p", { class: "message", role: "status" });

  async function send(type, args) {
    try {
      const sent =
        type === "push-config"
          ? await api(`${path}/config/push`, { method: "POST", body: {} })
          : await api(`${path}/commands`, { method: "POST", body: args ? { type, args } : { type } });
      replace(message, `Sent ${sent.type} (${sent.id}): ${sent.state}.`);
      message.className = "message ok";
      await load();
    } catch (error) {
      replace(message, `${type}: ${error.detail ?? error}`);
      message.className = "message error";
    }
  }

  const head = h("p", { class: "subtitle" });
  const cards = h("div", { class: "row" });
  const devicesBox = h("div");
  const commandsBox = h("div");
  const historyBox = h("div");
  const formsBox = h("div");

  async function load() {
    const [gateway, devices, commands, config, history] = await Promise.all([
      api(path),
      api("/devices", { params: { gateway: gatewayId, limit: 1000 } }),
      api(`${path}/commands`, { params: { limit: 20 } }),
      api(`${path}/config`),
      api(`${path}/history`, { params: { limit: 50 } }),
    ]);
    if (!ctx.current()) return;
    const sender = canOperate ? send : null;
    const reasons = gateway.state === "degraded" ? gateway.degraded_reasons.join("; ") : gateway.state_reason;
    replace(
      head,
      badge(gateway.state),
      ` since ${ago(gateway.state_since_ms)}`,
      reasons ? ` — ${reasons}` : "",
      ` · ${gateway.place ?? "no place"}`,
      gateway.label ? ` · ${gateway.label}` : "",
    );
    replace(cards, bufferCard(gateway), configCard(config, sender));
    const headers = ["Device", "State", "Why", "Last value", "Read", "Counters"];
    replace(devicesBox, table(canOperate ? [...headers, ""] : headers, deviceRows(gateway, devices, gateway.health, sender), { id: "devices" }));
    replace(
      commandsBox,
      commands.length
        ? table(["Created", "Type", "Args", "State", "Detail", "By", "Took"], commandRows(commands), { id: "commands" })
        : h("p", { class: "quiet" }, "No commands yet."),
    );
    replace(
      historyBox,
      stateStrip(history),
      history.length ? table(["When", "Change", "Why"], historyRows(history), { id: "history" }) : h("p", { class: "quiet" }, "No transitions yet."),
    );
    if (!formsBox.hasChildNodes()) {
      replace(formsBox, sender ? commandForms(devices, send) : h("p", { class: "quiet" }, "Your token may read but not command."));
    }
  }

  await load();
  if (!ctx.current()) return;
  replace(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Fleet"), " › gateway"),
    h("h1", {}, gatewayId),
    head,
    cards,
    card("Devices", devicesBox),
    card("Commands", formsBox, message, commandsBox),
    card("Health history", historyBox),
  );
  ctx.every(REFRESH_MS, () => load().catch(() => {}));
}
