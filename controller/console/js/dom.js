// Building the page without innerHTML: every value is a text node, never markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function setAttrs(node, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(node.dataset, value);
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  return node;
}

/** h("a", {href: "#/"}, "text", child, [more]) */
export function h(tag, attrs, ...children) {
  return append(setAttrs(document.createElement(tag), attrs), children);
}

/** An SVG element, same shape as h(). */
export function s(tag, attrs, ...children) {
  return append(setAttrs(document.createElementNS(SVG_NS, tag), attrs), children);
}

export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

export function ago(ms, now = Date.now()) {
  if (ms === null || ms === undefined) return "never";
  return `${duration((now - ms) / 1000)} ago`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, seconds);
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

export function time(ms) {
  if (ms === null || ms === undefined) return "–";
  const d = new Date(ms);
  return d.toLocaleString(undefined, { hour12: false });
}

export function number(value, digits = 2) {
  if (value === null || value === undefined) return "–";
  return Number(value).toLocaleString(undefined, { maximumFractionDigits: digits });
}

/**
 * A device's last value as a person reads it: "level_cm 250.7 cm", or why there is none.
 * "_device" is the agent's metric for a read that failed before the device ever answered
 * (its port would not open, or it never replied): that is "no answer yet", not a value.
 */
export function lastValue(device) {
  if (!device.last_metric) return "no reading yet";
  if (device.last_metric === "_device") return "no answer yet";
  const value = device.last_value === null ? "no value" : `${number(device.last_value)} ${device.last_unit ?? ""}`.trim();
  const quality = device.last_quality && device.last_quality !== "good" ? ` (${device.last_quality})` : "";
  return `${device.last_metric} ${value}${quality}`;
}

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return `${number(v, 1)} ${units[i]}`;
}

/** A state badge: its class is the state, so the stylesheet colours it. */
export function badge(state, text) {
  return h("span", { class: `state state-${state}`, "data-state": state }, text ?? state);
}

export function table(headers, rows, attrs = {}) {
  return h(
    "table",
    attrs,
    h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name)))),
    h("tbody", {}, rows),
  );
}

export function card(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), children);
}

export function keyValues(pairs) {
  return h(
    "dl",
    { class: "kv" },
    pairs.map(([key, value]) => [h("dt", {}, key), h("dd", {}, value)]),
  );
}
