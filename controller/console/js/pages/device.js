// One device: a chart of each of its metrics over a chosen window, with the risk rules'
// thresholds as coloured bands, and its health history.

import { api, ApiError } from "../api.js";
import { lineChart, stateStrip } from "../chart.js";
import { ago, badge, card, h, lastValue, number, replace, table, time } from "../dom.js";

export const WINDOWS = [
  ["5m", 5 * 60e3],
  ["15m", 15 * 60e3],
  ["1h", 3600e3],
  ["6h", 6 * 3600e3],
  ["24h", 24 * 3600e3],
  ["7d", 7 * 24 * 3600e3],
];
const MAX_READINGS = 10000;
const REFRESH_MS = 5000;

async function rulesFor(deviceId, gateway) {
  try {
    const rules = await api("/risk-rules", { params: { gateway } });
    return rules.points.flatMap((point) =>
      point.metrics.filter((m) => m.device === deviceId).map((m) => ({ ...m, point: point.id, pointName: point.name })),
    );
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 403)) return null;
    throw error;
  }
}

function ruleText(rule) {
  const bounds = ["blue", "yellow", "orange", "red"]
    .filter((c) => rule.thresholds[c] !== null && rule.thresholds[c] !== undefined)
    .map((c) => h("span", { class: `swatch colour-${c}` }, `${c} ≥ ${rule.thresholds[c]}`));
  const measure = rule.measure === "value" ? "value" : `${rule.measure} over ${rule.window_s} s`;
  return h("p", { class: "rule" }, `risk point ${rule.pointName || rule.point}: ${measure}${rule.absolute ? " (either sign)" : ""} `, bounds);
}

function metricCharts(device, readings, rules, windowMs) {
  const now = Date.now();
  const byMetric = new Map();
  for (const r of readings) {
    if (!byMetric.has(r.metric)) byMetric.set(r.metric, []);
    byMetric.get(r.metric).push({ ts: r.ts_ms, value: r.value, unit: r.unit });
  }
  if (!byMetric.size) return [h("p", { class: "quiet" }, "No readings in this window.")];
  return [...byMetric.entries()].map(([metric, points]) => {
    const metricRules = (rules || []).filter((rule) => rule.metric === metric);
    const banded = metricRules.find((rule) => rule.measure === "value" && !rule.absolute);
    const unit = points[0].unit || "";
    return h(
      "figure",
      { class: "metric", "data-metric": metric },
      h("figcaption", {}, h("b", {}, metric), unit ? ` (${unit})` : "", ` — ${points.length} readings`, points.length >= MAX_READINGS ? " (newest only)" : ""),
      lineChart({ points, window: [now - windowMs, now], thresholds: banded ? banded.thresholds : null, unit, label: `${device.id} ${metric}` }),
      metricRules.map(ruleText),
    );
  });
}

export async function render(main, [deviceId], ctx) {
  const path = `/devices/${encodeURIComponent(deviceId)}`;
  const chosen = ctx.query.get("window") || "1h";
  const windowMs = (WINDOWS.find(([name]) => name === chosen) || WINDOWS[2])[1];
  const head = h("div");
  const charts = h("div", { class: "charts" });
  const historyBox = h("div");
  let rules = null;

  async function load() {
    const since = Date.now() - windowMs;
    const [device, readings, history] = await Promise.all([
      api(path),
      api(`${path}/readings`, { params: { since_ms: Math.floor(since), limit: MAX_READINGS } }),
      api(`${path}/history`, { params: { limit: 50 } }),
    ]);
    if (!ctx.current()) return;
    replace(
      head,
      h(
        "p",
        { class: "subtitle" },
        badge(device.health_state),
        device.health_reason ? ` ${device.health_reason}` : "",
        ` · ${lastValue(device)}`,
        device.last_ts_ms ? ` ${ago(device.last_ts_ms)}` : "",
        ` · gateway `,
        h("a", { href: `#/gateway/${device.gateway}` }, device.gateway),
        device.family ? ` · ${device.family}` : "",
        // What the device reports about itself (reboot count, supply voltage...).
        Object.entries(device.health_registers ?? {}).map(([name, v]) => ` · ${name} ${number(v)}`),
      ),
    );
    replace(charts, metricCharts(device, readings.readings, rules, windowMs));
    replace(
      historyBox,
      stateStrip(history),
      history.length
        ? table(["When", "Change", "Why"], history.map((t) => h("tr", {}, h("td", {}, time(t.at_ms)), h("td", {}, badge(t.from_state), " → ", badge(t.to_state)), h("td", {}, t.reason))))
        : h("p", { class: "quiet" }, "No transitions yet."),
    );
  }

  const gateway = deviceId.split(".")[0];
  rules = await rulesFor(deviceId, gateway);
  await load();
  if (!ctx.current()) return;
  const picker = h(
    "nav",
    { class: "window-picker", "aria-label": "time window" },
    WINDOWS.map(([name]) => h("a", { href: `#/device/${deviceId}?window=${name}`, class: name === chosen ? "active" : "" }, name)),
  );
  replace(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Fleet"), " › ", h("a", { href: `#/gateway/${gateway}` }, gateway), " › device"),
    h("h1", {}, deviceId),
    head,
    card("Readings", picker, charts, rules === null ? h("p", { class: "quiet" }, "No risk rules are available: thresholds are not drawn.") : null),
    card("Health history", historyBox),
  );
  ctx.every(REFRESH_MS, () => load().catch(() => {}));
}
