// An inline SVG line chart of one metric over a time window, with the five-colour
// thresholds drawn as bands behind the line. No library: a few dozen elements.

import { s } from "./dom.js";

const COLOURS = ["green", "blue", "yellow", "orange", "red"];
const PAD = { left: 56, right: 12, top: 10, bottom: 26 };

/** Bands from thresholds {blue, yellow, orange, red} (lower bounds): [{colour, from, to}]. */
export function bands(thresholds) {
  const bounds = COLOURS.slice(1)
    .map((colour) => ({ colour, from: thresholds[colour] }))
    .filter((b) => b.from !== null && b.from !== undefined);
  const out = [{ colour: "green", from: -Infinity, to: bounds.length ? bounds[0].from : Infinity }];
  bounds.forEach((b, i) => out.push({ colour: b.colour, from: b.from, to: i + 1 < bounds.length ? bounds[i + 1].from : Infinity }));
  return out;
}

function niceTicks(min, max, count = 5) {
  const span = max - min || 1;
  const step0 = span / count;
  const magnitude = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((m) => m >= step0) || magnitude * 10;
  const ticks = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/** Keep the shape with at most ~2 points per pixel column: the min and max of each. */
function downsample(points, x0, x1, columns) {
  if (points.length <= columns * 2) return points;
  const buckets = new Map();
  for (const p of points) {
    const column = Math.floor(((p.ts - x0) / (x1 - x0 || 1)) * columns);
    const bucket = buckets.get(column);
    if (!bucket) buckets.set(column, { min: p, max: p });
    else {
      if (p.value < bucket.min.value) bucket.min = p;
      if (p.value > bucket.max.value) bucket.max = p;
    }
  }
  return [...buckets.values()].flatMap((b) => (b.min.ts <= b.max.ts ? [b.min, b.max] : [b.max, b.min]));
}

function domain(values, thresholdBands) {
  let min = Math.min(...values);
  let max = Math.max(...values);
  // Show the colour the line is in, the one below it, and how far the next one up is.
  const bounds = thresholdBands.map((b) => b.from).filter(Number.isFinite);
  const below = bounds.filter((v) => v <= min).sort((a, b) => b - a);
  const above = bounds.filter((v) => v > max).sort((a, b) => a - b);
  if (below.length) min = below[Math.min(1, below.length - 1)];
  if (above.length) max = above[0];
  const pad = (max - min) * 0.08 || Math.abs(max) * 0.05 || 1;
  return [min - pad, max + pad];
}

/**
 * points: [{ts, value}] (any order), window: [fromMs, toMs], thresholds or null.
 * Returns an <svg> with role="img" and a text description.
 */
export function lineChart({ points, window, thresholds, unit = "", width = 1000, height = 260, label = "" }) {
  const [x0, x1] = window;
  const values = points.filter((p) => p.value !== null).sort((a, b) => a.ts - b.ts);
  const plotW = width - PAD.left - PAD.right;
  const plotH = height - PAD.top - PAD.bottom;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": label, width, height });
  const thresholdBands = thresholds ? bands(thresholds) : [];
  if (!values.length) {
    svg.append(s("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "chart-empty" }, "no readings in this window"));
    return svg;
  }
  const [y0, y1] = domain(values.map((p) => p.value), thresholdBands);
  const x = (ts) => PAD.left + ((ts - x0) / (x1 - x0 || 1)) * plotW;
  const y = (v) => PAD.top + (1 - (v - y0) / (y1 - y0 || 1)) * plotH;
  const clip = (v) => Math.min(Math.max(v, y0), y1);
  for (const band of thresholdBands) {
    const top = clip(band.to);
    const bottom = clip(band.from);
    if (top <= bottom) continue;
    svg.append(
      s("rect", { x: PAD.left, width: plotW, y: y(top), height: y(bottom) - y(top), class: `band band-${band.colour}`, "data-band": band.colour },
        s("title", {}, `${band.colour}: ${Number.isFinite(band.from) ? `≥ ${band.from}` : "below"} ${unit}`)),
    );
  }
  for (const tick of niceTicks(y0, y1)) {
    svg.append(s("line", { x1: PAD.left, x2: PAD.left + plotW, y1: y(tick), y2: y(tick), class: "grid" }));
    svg.append(s("text", { x: PAD.left - 6, y: y(tick) + 4, "text-anchor": "end", class: "axis" }, String(tick)));
  }
  const spanS = (x1 - x0) / 1000;
  for (let i = 0; i <= 4; i += 1) {
    const ts = x0 + ((x1 - x0) * i) / 4;
    const d = new Date(ts);
    const text = spanS > 172800 ? d.toLocaleDateString() : d.toLocaleTimeString(undefined, { hour12: false, hour: "2-digit", minute: "2-digit" });
    svg.append(s("text", { x: x(ts), y: height - 8, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle", class: "axis" }, text));
  }
  const shown = downsample(values, x0, x1, plotW);
  const path = shown.map((p, i) => `${i ? "L" : "M"}${x(p.ts).toFixed(1)},${y(p.value).toFixed(1)}`).join("");
  svg.append(s("path", { d: path, class: "line" }));
  const last = values[values.length - 1];
  svg.append(s("circle", { cx: x(last.ts), cy: y(last.value), r: 3, class: "last" }, s("title", {}, `${last.value} ${unit}`)));
  svg.append(s("rect", { x: PAD.left, y: PAD.top, width: plotW, height: plotH, class: "frame" }));
  return svg;
}

/**
 * A strip of the last `windowMs` coloured by state, from transitions (newest first, as the
 * API gives them). The state before the oldest transition shown is its from_state.
 */
export function stateStrip(transitions, { maxWindowMs = 24 * 3600e3, width = 1000, height = 34 } = {}) {
  const now = Date.now();
  const oldest = transitions.length ? Math.min(...transitions.map((t) => t.at_ms)) : now;
  // From the first transition (with a margin) when that is recent, else the last 24 h.
  const windowMs = Math.min(maxWindowMs, Math.max(60e3, (now - oldest) * 1.05));
  const start = now - windowMs;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "strip", role: "img", "aria-label": "state over time" });
  const ordered = [...transitions].sort((a, b) => a.at_ms - b.at_ms);
  const x = (ts) => ((Math.max(ts, start) - start) / windowMs) * width;
  let state = ordered.length ? ordered[0].from_state : "unknown";
  let from = start;
  const segments = [];
  for (const t of ordered) {
    if (t.at_ms > start) segments.push({ state, from, to: t.at_ms });
    state = t.to_state;
    from = Math.max(t.at_ms, start);
  }
  segments.push({ state, from, to: now });
  for (const seg of segments) {
    if (seg.to <= start) continue;
    svg.append(
      s("rect", { x: x(seg.from), y: 0, width: Math.max(1, x(seg.to) - x(seg.from)), height: height - 14, class: `strip-${seg.state}` },
        s("title", {}, `${seg.state} from ${new Date(seg.from).toLocaleString()}`)),
    );
  }
  svg.append(s("text", { x: 0, y: height - 2, class: "axis" }, new Date(start).toLocaleString(undefined, { hour12: false })), s("text", { x: width, y: height - 2, "text-anchor": "end", class: "axis" }, "now"));
  return svg;
}
