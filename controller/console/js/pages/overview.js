// Fleet overview: gateways and devices by state, per place, with the reasons for the
// degraded ones. Everything comes from the scoped list endpoints, so a token sees its own.

import { all } from "../api.js";
import { ago, badge, card, h, replace, table } from "../dom.js";

const GATEWAY_STATES = ["online", "degraded", "offline", "unknown"];
const DEVICE_STATES = ["ok", "failing", "stale", "unreachable", "maintenance"];
const REFRESH_MS = 5000;

function streetOf(place) {
  if (!place) return "(no place)";
  return place.split("/").slice(0, 3).join("/");
}

function countBy(items, key, states) {
  const counts = Object.fromEntries(states.map((state) => [state, 0]));
  for (const item of items) counts[item[key]] = (counts[item[key]] || 0) + 1;
  return counts;
}

function tiles(title, counts) {
  return h(
    "div",
    { class: "tiles", "aria-label": title },
    h("h2", {}, title),
    Object.entries(counts).map(([state, count]) =>
      h("div", { class: `tile state-${state}`, "data-count": state }, h("b", {}, count), state),
    ),
  );
}

function gatewayReason(gateway) {
  if (gateway.state === "degraded") return gateway.degraded_reasons.join("; ");
  if (gateway.state === "offline") return gateway.state_reason || "offline";
  return "";
}

function attention(gateways, devices) {
  const bad = gateways.filter((g) => g.state === "degraded" || g.state === "offline");
  const failing = devices.filter((d) => d.health_state === "failing" || d.health_state === "stale");
  if (!bad.length && !failing.length) {
    return card("Needs attention", h("p", { class: "quiet" }, "Nothing: every gateway and device is fine."));
  }
  return card(
    "Needs attention",
    h(
      "ul",
      { class: "attention" },
      bad.map((g) =>
        h(
          "li",
          { "data-gateway": g.id },
          badge(g.state),
          " ",
          h("a", { href: `#/gateway/${g.id}` }, g.id),
          ` (${g.place ?? "no place"}): `,
          gatewayReason(g),
        ),
      ),
      failing.map((d) =>
        h(
          "li",
          { "data-device": d.id },
          badge(d.health_state),
          " ",
          h("a", { href: `#/device/${d.id}` }, d.id),
          `: ${d.health_reason ?? d.health_state}`,
        ),
      ),
    ),
  );
}

function placeSection(street, gateways, devicesOf) {
  const rows = gateways.map((g) => {
    const devices = devicesOf.get(g.id) || [];
    const ok = devices.filter((d) => d.health_state === "ok").length;
    return h(
      "tr",
      { "data-gateway": g.id, class: `row-${g.state}` },
      h("td", {}, h("a", { href: `#/gateway/${g.id}` }, g.id), g.label ? h("div", { class: "quiet" }, g.label) : null),
      h("td", {}, badge(g.state)),
      h("td", {}, gatewayReason(g)),
      h("td", {}, g.place ?? "–"),
      h("td", {}, `${ok} / ${devices.length} ok`),
      h("td", {}, ago(g.last_heartbeat_ms)),
      h("td", {}, g.agent_version ?? "–"),
    );
  });
  const counts = countBy(gateways, "state", GATEWAY_STATES);
  const summary = GATEWAY_STATES.filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`).join(", ");
  return h(
    "section",
    { class: "card place", "data-place": street },
    h("h2", {}, street, h("span", { class: "quiet" }, ` — ${summary}`)),
    table(["Gateway", "State", "Why", "Place", "Devices", "Last heartbeat", "Agent"], rows),
  );
}

async function load(body, ctx) {
  const [gateways, devices] = await Promise.all([all("/gateways"), all("/devices")]);
  if (!ctx.current()) return;
  const devicesOf = new Map();
  for (const device of devices) {
    if (!devicesOf.has(device.gateway)) devicesOf.set(device.gateway, []);
    devicesOf.get(device.gateway).push(device);
  }
  const byStreet = new Map();
  for (const gateway of gateways) {
    const street = streetOf(gateway.place);
    if (!byStreet.has(street)) byStreet.set(street, []);
    byStreet.get(street).push(gateway);
  }
  const places = [...byStreet.keys()].sort();
  replace(
    body,
    h(
      "div",
      { class: "row" },
      tiles("Gateways", countBy(gateways, "state", GATEWAY_STATES)),
      tiles("Devices", countBy(devices, "health_state", DEVICE_STATES)),
    ),
    attention(gateways, devices),
    gateways.length
      ? places.map((street) => placeSection(street, byStreet.get(street), devicesOf))
      : h("p", { class: "quiet" }, "No gateways are known here yet."),
  );
}

export async function render(main, _params, ctx) {
  const scope = ctx.me.place ? `at or below ${ctx.me.place}` : "everywhere";
  const body = h("div", { id: "overview" });
  await load(body, ctx);
  if (!ctx.current()) return;
  replace(main, h("h1", {}, "Fleet ", h("span", { class: "quiet" }, scope)), body);
  ctx.every(REFRESH_MS, () => load(body, ctx).catch(() => {}));
}
