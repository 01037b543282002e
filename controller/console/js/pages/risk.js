// The five-colour risk map as a schematic (no map tiles: it works offline): one tile per
// place, coloured by its worst risk point, drilling down city > district > street > point.

import { api, ApiError } from "../api.js";
import { ago, h, replace } from "../dom.js";
import { RANK } from "../live.js";

const COLOURS = ["red", "orange", "yellow", "blue", "green"];
const LEVELS = ["city", "district", "street", "grid"];
const REFRESH_MS = 5000;

function worst(counts) {
  return COLOURS.find((c) => (counts?.[c] || 0) > 0) || "green";
}

function depth(place) {
  return place ? place.split("/").length : 0;
}

function countsBar(counts) {
  const total = COLOURS.reduce((n, c) => n + (counts[c] || 0), 0) || 1;
  return h(
    "div",
    { class: "counts-bar", "aria-hidden": "true" },
    COLOURS.filter((c) => counts[c]).map((c) => h("span", { class: `colour-${c}`, "data-width": String(Math.round((100 * counts[c]) / total)) })),
  );
}

function countsText(counts) {
  return COLOURS.filter((c) => counts[c]).map((c) => `${counts[c]} ${c}`).join(" · ") || "no risk points";
}

function legend(totals) {
  return h(
    "ul",
    { class: "legend" },
    COLOURS.map((c) => h("li", { "data-colour": c }, h("span", { class: `swatch colour-${c}` }), ` ${c}: `, h("b", {}, totals[c] || 0))),
  );
}

function crumbs(place, names) {
  const parts = place ? place.split("/") : [];
  const links = [h("a", { href: "#/risk" }, "All places")];
  parts.forEach((_, i) => {
    const path = parts.slice(0, i + 1).join("/");
    links.push(" › ", i === parts.length - 1 ? h("b", {}, names.get(path) || parts[i]) : h("a", { href: `#/risk?place=${path}` }, names.get(path) || parts[i]));
  });
  return h("p", { class: "crumbs" }, links);
}

function placeTiles(place, map, names) {
  const level = depth(place);
  const children = Object.keys(map.places)
    .filter((p) => depth(p) === level + 1 && (!place || p.startsWith(`${place}/`)))
    .sort((a, b) => RANK[worst(map.places[b])] - RANK[worst(map.places[a])] || a.localeCompare(b));
  return h(
    "div",
    { class: "tiles-map", role: "list" },
    children.map((child) => {
      const counts = map.places[child];
      return h(
        "a",
        { class: `place-tile colour-${worst(counts)}`, href: `#/risk?place=${child}`, role: "listitem", "data-place": child, "data-colour": worst(counts) },
        h("span", { class: "level" }, LEVELS[level] || "place"),
        h("b", {}, names.get(child) || child.split("/").pop()),
        h("span", { class: "counts" }, countsText(counts)),
        countsBar(counts),
      );
    }),
  );
}

function pointTiles(place, map, devicesOf) {
  const points = map.points
    .filter((p) => p.place === place || p.place.startsWith(`${place}/`))
    .sort((a, b) => RANK[b.colour] - RANK[a.colour] || a.place.localeCompare(b.place));
  if (!points.length) return h("p", { class: "quiet" }, "No risk points here.");
  return h(
    "div",
    { class: "tiles-map points" },
    points.map((p) =>
      h(
        "div",
        { class: `point-tile colour-${p.colour}`, "data-point": p.id, "data-colour": p.colour },
        h("span", { class: "level" }, `${p.category} · ${p.place.slice(place.length + 1) || "here"}`),
        h("b", {}, p.name || p.id),
        h("span", {}, `${p.colour} ${p.colour_since_ms ? ago(p.colour_since_ms) : ""}`),
        p.blind_devices.length ? h("span", { class: "blind" }, `blind: ${p.blind_devices.join(", ")}`) : null,
        h("span", { class: "devices" }, (devicesOf.get(p.id) || []).map((d) => h("a", { href: `#/device/${d}` }, d))),
      ),
    ),
  );
}

export async function render(main, _params, ctx) {
  const place = ctx.query.get("place") || null;
  const body = h("div");

  async function load() {
    let map;
    try {
      map = await api("/risk-map", { params: { place } });
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        replace(body, h("p", { class: "quiet" }, "This controller has no risk map (no risk points configured)."));
        return;
      }
      throw error;
    }
    const [places, registered] = await Promise.all([
      api("/places", { params: { limit: 1000 } }).catch(() => []),
      api("/risk-points", { params: { limit: 1000 } }).catch(() => []),
    ]);
    if (!ctx.current()) return;
    const names = new Map(places.map((p) => [p.path, p.name]));
    const devicesOf = new Map(registered.map((p) => [p.id, p.devices]));
    const here = place ? map.places[place] || {} : map.totals;
    replace(
      body,
      crumbs(place, names),
      legend(here),
      depth(place) >= 3 ? pointTiles(place, map, devicesOf) : placeTiles(place, map, names),
    );
    for (const bar of body.querySelectorAll(".counts-bar span")) bar.style.width = `${bar.dataset.width}%`;
  }

  await load();
  if (!ctx.current()) return;
  replace(main, h("h1", {}, "Risk map"), body);
  ctx.every(REFRESH_MS, () => load().catch(() => {}));
}
