// The console shell: log in (or not, in demo mode), route #/... to a page, keep the live
// alert stream running for the header badge and the alerts page.

import { api, ApiError, clearToken, setToken, token } from "./api.js";
import { h, replace } from "./dom.js";
import { LiveAlerts } from "./live.js";
import * as alerts from "./pages/alerts.js";
import * as device from "./pages/device.js";
import * as gateway from "./pages/gateway.js";
import * as map from "./pages/map.js";
import * as overview from "./pages/overview.js";
import * as risk from "./pages/risk.js";
import * as rosters from "./pages/rosters.js";

const ROUTES = [
  [/^\/?$/, overview, "overview"],
  [/^\/gateway\/([^/]+)$/, gateway, "overview"],
  [/^\/device\/([^/]+)$/, device, "overview"],
  [/^\/map$/, map, "map"],
  [/^\/risk$/, risk, "risk"],
  [/^\/alerts$/, alerts, "alerts"],
  [/^\/rosters$/, rosters, "rosters"],
];

const main = document.getElementById("main");
const state = { me: null, live: null, cleanups: [], renderId: 0 };

function $(id) {
  return document.getElementById(id);
}

function showLogin(message = "") {
  state.live?.stop();
  state.live = null;
  state.me = null;
  $("live").hidden = true; // no stream before anyone logged in
  $("nav").hidden = true;
  $("logout").hidden = true;
  $("who").textContent = "";
  main.replaceChildren();
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("token").focus();
}

async function identify() {
  try {
    state.me = await api("/whoami");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      const hadToken = Boolean(token());
      clearToken();
      showLogin(hadToken ? "That token is unknown or revoked." : "");
      return false;
    }
    throw error;
  }
  $("login").hidden = true;
  $("nav").hidden = false;
  const me = state.me;
  $("who").textContent = `${me.name} · ${me.role}${me.place ? ` · ${me.place}` : " · everywhere"}`;
  $("logout").hidden = me.auth === "demo";
  state.live = new LiveAlerts(me);
  state.live.addEventListener("status", (event) => {
    $("live").className = `live live-${event.detail}`;
    $("live").textContent = `● ${event.detail}`;
    $("live").title = `live alert stream: ${event.detail}`;
    $("live").hidden = false;
  });
  state.live.addEventListener("change", () => {
    const count = state.live.openCount();
    $("alert-badge").hidden = count === 0;
    $("alert-badge").textContent = String(count);
    $("alert-badge").className = `badge colour-${state.live.worstOpenColour()}`;
  });
  state.live.start();
  return true;
}

function parseHash() {
  const raw = decodeURIComponent(location.hash.replace(/^#/, "")) || "/";
  const [path, query = ""] = raw.split("?");
  return { path, query: new URLSearchParams(query) };
}

async function route() {
  if (!state.me) return;
  for (const cleanup of state.cleanups.splice(0)) cleanup();
  const renderId = ++state.renderId;
  const { path, query } = parseHash();
  const found = ROUTES.find(([pattern]) => pattern.test(path));
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", Boolean(found) && link.dataset.page === found[2]);
  }
  if (!found) {
    replace(main, h("p", { class: "error" }, `No such page: ${path}`));
    return;
  }
  const [pattern, page] = found;
  const match = path.match(pattern);
  const ctx = {
    me: state.me,
    live: state.live,
    query,
    current: () => renderId === state.renderId,
    every(ms, fn) {
      const timer = setInterval(() => {
        if (renderId === state.renderId) fn();
      }, ms);
      state.cleanups.push(() => clearInterval(timer));
    },
    onCleanup(fn) {
      state.cleanups.push(fn);
    },
  };
  main.replaceChildren(h("p", { class: "loading" }, "Loading…"));
  try {
    await page.render(main, match.slice(1), ctx);
  } catch (error) {
    if (renderId !== state.renderId) return;
    if (error instanceof ApiError && error.status === 401) return;
    const text = error instanceof ApiError ? error.detail : String(error);
    replace(main, h("p", { class: "error", role: "alert" }, text));
  }
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const value = $("token").value.trim();
  if (!value) return;
  setToken(value);
  $("token").value = "";
  if (await identify()) await route();
});

$("logout").addEventListener("click", () => {
  clearToken();
  showLogin("Logged out.");
});

window.addEventListener("edgewatch:unauthorized", () => {
  if (state.me && state.me.auth !== "demo") {
    clearToken();
    showLogin("Your token was refused (revoked?). Log in again.");
  }
});
window.addEventListener("hashchange", route);

(async () => {
  try {
    if (await identify()) await route();
  } catch (error) {
    replace(main, h("p", { class: "error", role: "alert" }, `The controller does not answer: ${error}`));
  }
})();
