// The city's one map (一图统览): risk points coloured by their colour, gateways by their
// state, over map tiles or, offline, over the places' own outlines filled with their worst
// colour. The controller clusters the points for each view (GET /map/features): the map
// never holds more than a few thousand features, and a street's zoom shows points one by
// one. Live: every alert event on the console's stream refreshes the view's colours.
// Leaflet is vendored in ../vendor/leaflet/ (loaded by index.html as the global L).

import { api } from "../api.js";
import { ago, h, replace } from "../dom.js";

const HEX = { red: "#d7191c", orange: "#f07c1b", yellow: "#e8c21a", blue: "#2b83ba", green: "#1a9641" };
const STATE_HEX = { online: "#1a9641", unknown: "#b0b7c3", degraded: "#f07c1b", offline: "#667085" };
const MOVE_DEBOUNCE_MS = 150; // a drag or a zoom ends in a burst of moveend events
const LIVE_DEBOUNCE_MS = 40; // alert events of one commit come together
const FALLBACK_VIEW = { lat: 29.56, lon: 106.55, zoom: 8 };

function clusterRadius(count) {
  return Math.min(28, 9 + 3 * Math.log10(count) * 2);
}

function viewFrom(query) {
  const lat = Number(query.get("lat"));
  const lon = Number(query.get("lon"));
  const zoom = Number(query.get("z"));
  if (!query.has("lat") || !Number.isFinite(lat) || !Number.isFinite(lon) || !Number.isFinite(zoom)) return null;
  return { lat, lon, zoom: Math.max(0, Math.min(20, Math.round(zoom))) };
}

function countsLine(counts) {
  return ["red", "orange", "yellow", "blue", "green", "offline", "degraded", "unknown", "online"]
    .filter((c) => counts?.[c])
    .map((c) => `${counts[c]} ${c}`)
    .join(" · ");
}

function outlineTip(p) {
  return `${p.name}: ${p.points} risk points${p.points ? ` (${countsLine(p.counts)})` : ""}`;
}

function legend(config) {
  const control = L.control({ position: "bottomleft" });
  control.onAdd = () =>
    h(
      "div",
      { class: "map-legend", id: "map-legend" },
      h("b", {}, config.tile_url ? "Risk" : "Risk (offline base layer: place outlines)"),
      [...config.colours].reverse().map((c) => h("span", { class: "legend-item" }, h("i", { class: `swatch colour-${c}` }), c)),
    );
  return control;
}

export async function render(main, _params, ctx) {
  const config = await api("/map/config");
  if (!ctx.current()) return;
  const datum = config.tile_datum;
  const element = h("div", { id: "map", class: "map", "data-state": "loading", "data-datum": datum });
  const status = h("p", { class: "quiet map-status", id: "map-status" }, "");
  replace(main, h("h1", {}, "Map"), status, element);

  const map = L.map(element, { zoomSnap: 1, maxZoom: config.tile_max_zoom, fadeAnimation: false });
  ctx.onCleanup(() => map.remove());
  if (config.tile_url) {
    L.tileLayer(config.tile_url, { maxZoom: config.tile_max_zoom, attribution: config.tile_attribution }).addTo(map);
  } else {
    element.classList.add("offline");
  }
  map.attributionControl.setPrefix(false);
  legend(config).addTo(map);

  const outlineStyle = (feature) => ({
    color: feature.properties.level >= 2 ? "#444" : "#222",
    weight: feature.properties.level >= 2 ? 1 : 1.5,
    fillColor: HEX[feature.properties.colour] || HEX.green,
    fillOpacity: feature.properties.colour === "green" ? 0.18 : 0.38,
    className: `outline colour-${feature.properties.colour}`,
  });
  const outlines = L.geoJSON(null, {
    style: outlineStyle,
    onEachFeature: (feature, layer) => {
      layer.bindTooltip(() => outlineTip(layer.feature.properties), { sticky: true });
      layer.on("click", () => {
        const p = layer.feature.properties;
        layer
          .bindPopup(
            h(
              "div",
              { class: "map-popup", "data-place": p.place },
              h("b", {}, p.name),
              h("div", {}, `${p.place} · worst ${p.colour}`),
              h("div", {}, countsLine(p.counts) || "no risk points"),
              h("a", { href: `#/risk?place=${p.place}` }, "risk by place"),
            ),
          )
          .openPopup();
      });
    },
  }).addTo(map);
  const riskLayer = L.layerGroup().addTo(map);
  const gatewayLayer = L.layerGroup();
  L.control.layers(null, { "Risk points": riskLayer, Gateways: gatewayLayer, "Place outlines": outlines }, { collapsed: false }).addTo(map);

  const initial = viewFrom(ctx.query);
  if (initial) map.setView([initial.lat, initial.lon], initial.zoom);
  else if (config.extent) map.fitBounds([[config.extent[1], config.extent[0]], [config.extent[3], config.extent[2]]]);
  else map.setView([FALLBACK_VIEW.lat, FALLBACK_VIEW.lon], FALLBACK_VIEW.zoom);

  let generation = 0;

  function bbox() {
    const b = map.getBounds().pad(0.05);
    const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
    return [clamp(b.getWest(), -180, 180), clamp(b.getSouth(), -85, 85), clamp(b.getEast(), -180, 180), clamp(b.getNorth(), -85, 85)]
      .map((v) => v.toFixed(6))
      .join(",");
  }

  async function pointPopup(id) {
    const point = await api(`/risk-points/${encodeURIComponent(id)}`);
    const alerts = ctx.live ? ctx.live.openAlerts().filter((a) => a.point === id) : [];
    return h(
      "div",
      { class: "map-popup", "data-point": id, "data-colour": point.colour },
      h("b", {}, point.name),
      h("div", {}, h("span", { class: `state colour-${point.colour}` }, point.colour), ` since ${point.colour_since_ms ? ago(point.colour_since_ms) : "–"}`),
      h("div", { class: "quiet" }, `${point.category} · ${point.place}`),
      point.devices.length ? h("div", {}, "devices: ", point.devices.map((d, i) => [i ? ", " : "", h("a", { href: `#/device/${d}` }, d)])) : h("div", { class: "quiet" }, "no devices"),
      alerts.length
        ? h("ul", { class: "popup-alerts" }, alerts.map((a) => h("li", { "data-alert": a.id }, h("a", { href: "#/alerts" }, `alert ${a.id}: ${a.colour}, ${a.state}`), ` (${a.device}/${a.metric})`)))
        : h("div", { class: "quiet" }, "no open alert"),
    );
  }

  function riskMarker(f) {
    const latlng = [f.lat, f.lon];
    if (f.kind === "point") {
      const marker = L.circleMarker(latlng, {
        radius: f.level === "green" ? 5 : 7,
        color: "#fff",
        weight: 1.5,
        fillColor: HEX[f.level],
        fillOpacity: 0.95,
        className: `feature point level-${f.level}`,
      });
      marker.on("click", async () => {
        try {
          marker.bindPopup(await pointPopup(f.id), { minWidth: 220 }).openPopup();
        } catch (error) {
          marker.bindPopup(h("div", { class: "error" }, String(error))).openPopup();
        }
      });
      marker.on("add", () => marker.getElement()?.setAttribute("data-point", f.id));
      return marker;
    }
    const icon = L.divIcon({
      className: `feature cluster level-${f.level}`,
      html: h("span", { class: `cluster-badge colour-${f.level}`, "data-count": f.count }, f.count >= 1000 ? `${Math.round(f.count / 100) / 10}k` : String(f.count)),
      iconSize: [2 * clusterRadius(f.count), 2 * clusterRadius(f.count)],
    });
    const marker = L.marker(latlng, { icon, keyboard: false, title: countsLine(f.counts) });
    marker.on("click", () => map.setView(latlng, Math.min(map.getZoom() + 2, config.tile_max_zoom)));
    return marker;
  }

  function gatewayMarker(f) {
    const marker = L.circleMarker([f.lat, f.lon], {
      radius: f.kind === "point" ? 5 : clusterRadius(f.count) / 2,
      color: "#111",
      weight: 2,
      fillColor: STATE_HEX[f.level] || STATE_HEX.offline,
      fillOpacity: 0.9,
      className: `feature gateway state-${f.level}`,
    });
    if (f.kind === "point") {
      marker.bindTooltip(`gateway ${f.id}: ${f.level}`);
      marker.on("click", () => {
        location.hash = `#/gateway/${f.id}`;
      });
    } else {
      marker.bindTooltip(`${f.count} gateways: ${countsLine(f.counts)}`);
    }
    return marker;
  }

  // A view not drawn yet takes the outlines crossing it (simplified for its zoom); a live
  // change on a drawn view takes only their colours and restyles the outlines drawn.
  let view = 0; // bumped by every move
  let drawnView = -1; // the view whose outlines are drawn
  async function refresh() {
    const mine = ++generation;
    const thisView = view;
    const withGeometry = drawnView !== thisView;
    const zoom = map.getZoom();
    const params = { bbox: bbox(), zoom, datum };
    const [risk, gateways, shapes] = await Promise.all([
      api("/map/features", { params: { ...params, layer: "risk" } }),
      map.hasLayer(gatewayLayer) ? api("/map/features", { params: { ...params, layer: "gateways" } }) : null,
      api("/map/boundaries", { params: { ...params, geometry: withGeometry } }),
    ]);
    if (mine !== generation || !ctx.current()) return;
    if (withGeometry) {
      outlines.clearLayers();
      outlines.addData(shapes);
      drawnView = thisView;
    } else {
      restyle(shapes);
    }
    riskLayer.clearLayers();
    for (const f of risk.features) riskMarker(f).addTo(riskLayer);
    gatewayLayer.clearLayers();
    if (gateways) for (const f of gateways.features) gatewayMarker(f).addTo(gatewayLayer);
    const red = risk.features.filter((f) => f.level === "red").reduce((n, f) => n + (f.kind === "point" ? 1 : f.counts.red), 0);
    replace(status, `${risk.points.toLocaleString()} risk points in view (${risk.features.length} on the map)${red ? `, ${red} red` : ""} · zoom ${zoom}${config.tile_url ? "" : " · offline base layer"}`);
    element.dataset.state = "ready";
    element.dataset.zoom = String(zoom);
    element.dataset.features = String(risk.features.length);
    element.dataset.points = String(risk.points);
    element.dataset.generation = String(mine);
    const centre = map.getCenter();
    history.replaceState(null, "", `#/map?lat=${centre.lat.toFixed(5)}&lon=${centre.lng.toFixed(5)}&z=${zoom}`);
  }

  function restyle(shapes) {
    const fresh = new Map(shapes.features.map((f) => [f.properties.place, f.properties]));
    outlines.eachLayer((layer) => {
      const properties = fresh.get(layer.feature.properties.place);
      if (!properties) return;
      layer.feature.properties = properties;
      layer.setStyle(outlineStyle(layer.feature));
      const element = layer.getElement();
      if (!element) return;
      for (const name of [...element.classList]) if (name.startsWith("colour-")) element.classList.remove(name);
      element.classList.add(`colour-${properties.colour}`);
    });
  }

  let timer = null;
  function soon(delayMs) {
    clearTimeout(timer);
    timer = setTimeout(() => refresh().catch((error) => replace(status, h("span", { class: "error" }, String(error)))), delayMs);
  }
  const moved = () => {
    view += 1;
    soon(MOVE_DEBOUNCE_MS);
  };
  map.on("moveend", moved);
  map.on("overlayadd", moved);
  const onLive = () => soon(LIVE_DEBOUNCE_MS);
  ctx.live?.addEventListener("change", onLive);
  ctx.onCleanup(() => {
    clearTimeout(timer);
    ctx.live?.removeEventListener("change", onLive);
  });
  await refresh();
}
