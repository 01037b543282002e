// Duty rosters: for the places the token may see, who is on duty now at each layer (grid,
// community, street, district, city), each roster's people and their channels, its weekly
// shifts and one-off overrides; for an operator, the edits the API allows. Who is on duty
// now is the controller's answer (its clock, the roster's zone), never worked out here.
// Channels are shown by name: their URLs hold credentials and never leave the controller.
// Every edit sends the whole roster with If-Match of the revision read, so an edit made
// meanwhile by someone else is refused (412) and shown, never silently undone.

import { all, api, ApiError } from "../api.js";
import { ago, card, h, keyValues, replace, table } from "../dom.js";
import {
  addOverrideForm,
  addPersonForm,
  addShiftForm,
  bodyOf,
  boundsProblem,
  daysText,
  hoursText,
  newRosterForm,
  wallText,
} from "../roster-edit.js";

const LAYERS = ["grid", "community", "street", "district", "city"];
const MAX_ROSTERS = 2000; // loaded at once; beyond, the page asks to narrow by place
const MAX_NAMES = 40; // people named per layer in the summary
const OPEN_ALL_UP_TO = 8; // rosters shown unfolded when there are this few
const REFRESH_MS = 60000; // who is on duty moves with the shifts

function rosterPath(place) {
  return `/rosters/${place.split("/").map(encodeURIComponent).join("/")}`;
}

function crumbs(place) {
  const parts = place ? place.split("/") : [];
  const links = [h("a", { href: "#/rosters" }, "All places")];
  parts.forEach((part, i) => {
    const path = parts.slice(0, i + 1).join("/");
    links.push(" › ", i === parts.length - 1 ? h("b", {}, part) : h("a", { href: `#/rosters?place=${path}` }, part));
  });
  return h("p", { class: "crumbs" }, links);
}

function onDuty(roster) {
  const now = new Set(roster.on_duty_now);
  return roster.people.filter((p) => now.has(p.id));
}

function capped(items, render) {
  const shown = items.slice(0, MAX_NAMES).map(render);
  return items.length > MAX_NAMES ? [...shown, h("li", { class: "quiet" }, `and ${items.length - MAX_NAMES} more`)] : shown;
}

/** Per layer: the people on duty now (with their roster's place), and the rosters with nobody. */
function onDutyCard(rosters) {
  const rows = LAYERS.map((layer) => {
    const of = rosters.filter((r) => r.layer === layer);
    const people = of.flatMap((r) => onDuty(r).map((p) => [p, r]));
    const empty = of.filter((r) => !r.on_duty_now.length);
    return h(
      "tr",
      { "data-layer": layer },
      h("th", { scope: "row" }, layer),
      h(
        "td",
        { "data-field": "on-duty" },
        !of.length
          ? h("span", { class: "quiet" }, "no roster")
          : people.length
            ? h("ul", { class: "names" }, capped(people, ([p, r]) => h("li", { "data-person": p.id }, p.name, h("span", { class: "quiet" }, ` · ${r.place}`))))
            : h("span", { class: "error" }, "nobody"),
      ),
      h("td", { "data-field": "nobody" }, empty.length ? h("ul", { class: "names error" }, capped(empty, (r) => h("li", {}, r.place))) : ""),
    );
  });
  return card("On duty now", table(["Layer", "On duty now", "Rosters with nobody on duty"], rows, { id: "on-duty" }));
}

export async function render(main, _params, ctx) {
  const place = ctx.query.get("place") || null;
  const canEdit = ctx.me.role !== "viewer";
  const message = h("p", { class: "message", role: "status" });
  const createMessage = h("p", { class: "message", role: "status" });
  const summaryBox = h("div");
  const listBox = h("div", { id: "rosters" });
  const views = new Map(); // place -> {roster, details, summary, body, tables, message, rendered}
  const channels = canEdit ? await api("/notify/channels").catch(() => []) : [];

  function say(node, text, ok) {
    replace(node, text);
    node.className = `message ${ok ? "ok" : "error"}`;
  }

  function drawSummary(view) {
    const r = view.roster;
    const people = onDuty(r);
    view.details.dataset.source = r.source;
    view.details.dataset.layer = r.layer;
    replace(
      view.summary,
      h("span", { class: "layer" }, r.layer),
      " ",
      h("b", {}, r.place),
      r.name ? ` · ${r.name}` : "",
      " — on duty now: ",
      h("span", { "data-field": "on-duty" }, people.length ? people.map((p) => p.name).join(", ") : h("span", { class: "error" }, "nobody")),
      r.source === "config" ? h("span", { class: "tag" }, "from the config · read-only") : null,
    );
  }

  function drawTables(view) {
    const r = view.roster;
    const editable = canEdit && r.source === "api";
    const names = new Map(r.people.map((p) => [p.id, p.name]));
    const now = new Set(r.on_duty_now);
    const edit = (what, action) => () => change(view, action, what);
    const removeButton = (label, attrs, onclick) => h("button", { type: "button", "data-edit": attrs.edit, disabled: attrs.disabled, title: attrs.title, onclick }, label);
    const people = r.people.map((p) => {
      const shifts = r.shifts.filter((s) => s.person === p.id).length;
      const overrides = r.overrides.filter((o) => o.person === p.id).length;
      const last = r.people.length === 1;
      return h(
        "tr",
        { "data-person": p.id, "data-on-duty": now.has(p.id) ? "yes" : "no" },
        h("td", {}, p.name),
        h("td", {}, h("code", {}, p.id)),
        h("td", {}, p.contacts.map((c) => h("span", { class: "channel", "data-channel": c.channel }, c.channel, c.to ? h("span", { class: "quiet" }, ` ${c.to}`) : null))),
        h("td", {}, now.has(p.id) ? h("span", { class: "state state-online" }, "on duty") : h("span", { class: "quiet" }, "off")),
        editable
          ? h("td", { class: "actions" }, removeButton("Remove", { edit: "remove-person", disabled: last, title: last ? "a roster needs one person: delete the roster instead" : null }, () => {
              const also = shifts + overrides ? ` and their ${shifts} shift(s) and ${overrides} override(s)` : "";
              if (also && !confirm(`Remove ${p.name}${also}?`)) return;
              edit(`removed ${p.name}`, (b) => {
                b.people = b.people.filter((x) => x.id !== p.id);
                b.shifts = b.shifts.filter((s) => s.person !== p.id);
                b.overrides = b.overrides.filter((o) => o.person !== p.id);
              })();
            }))
          : null,
      );
    });
    const shifts = r.shifts.map((s, i) =>
      h(
        "tr",
        { "data-shift": String(i), "data-person": s.person },
        h("td", {}, names.get(s.person) ?? s.person),
        h("td", {}, daysText(s.days)),
        h("td", {}, hoursText(s)),
        editable ? h("td", { class: "actions" }, removeButton("Remove", { edit: "remove-shift" }, edit(`removed a shift of ${s.person}`, (b) => b.shifts.splice(i, 1)))) : null,
      ),
    );
    const order = r.overrides.map((o, i) => [o, i]).sort(([a], [b]) => a.start.localeCompare(b.start));
    const overrides = order.map(([o, i]) =>
      h(
        "tr",
        { "data-override": String(i), "data-person": o.person },
        h("td", {}, names.get(o.person) ?? o.person),
        h("td", {}, wallText(o.start)),
        h("td", {}, wallText(o.end)),
        editable ? h("td", { class: "actions" }, removeButton("Remove", { edit: "remove-override" }, edit(`removed an override of ${o.person}`, (b) => b.overrides.splice(i, 1)))) : null,
      ),
    );
    const heads = (...names) => (editable ? [...names, ""] : names);
    replace(
      view.tables,
      h("h3", {}, "People and their channels"),
      table(heads("Person", "Id", "Channels", "Now"), people, { class: "people" }),
      h("h3", {}, `Weekly shifts (${r.timezone})`),
      shifts.length ? table(heads("Person", "Days", "Hours"), shifts, { class: "shifts" }) : h("p", { class: "quiet" }, "No weekly shifts."),
      h("h3", {}, `One-off overrides (${r.timezone})`),
      overrides.length ? table(heads("Person", "From", "To"), overrides, { class: "overrides" }) : h("p", { class: "quiet" }, "No overrides."),
    );
  }

  function drawBody(view) {
    const r = view.roster;
    const editable = canEdit && r.source === "api";
    const changeOf = (mutate, what) => change(view, mutate, what);
    const source =
      r.source === "config"
        ? h("span", { "data-field": "read-only" }, "the controller's config ([[notify.rosters]]): read-only here, change it in the config")
        : `the API, changed ${ago(r.updated_ms)}`;
    replace(
      view.body,
      keyValues([
        ["Place", h("a", { href: `#/rosters?place=${r.place}` }, r.place)],
        ["Layer", r.layer],
        ["Time zone", r.timezone],
        ["Source", source],
      ]),
      view.message,
      view.tables,
      editable
        ? h(
            "div",
            { class: "edits" },
            addPersonForm(r, channels, changeOf),
            addShiftForm(r, changeOf),
            addOverrideForm(r, changeOf),
            h("button", { type: "button", class: "danger", "data-edit": "delete-roster", onclick: () => removeRoster(view) }, "Delete roster"),
          )
        : null,
    );
    drawTables(view);
    view.rendered = true;
  }

  function update(view, roster) {
    const before = view.roster;
    view.roster = roster;
    drawSummary(view);
    if (!view.rendered) return;
    if (roster.revision !== before.revision) drawBody(view);
    else if (roster.on_duty_now.join() !== before.on_duty_now.join()) drawTables(view);
  }

  function makeView(roster) {
    const view = { roster, summary: h("summary"), body: h("div", { class: "roster-body" }), tables: h("div"), message: h("p", { class: "message", role: "status" }), rendered: false };
    view.details = h("details", { class: "roster card", "data-place": roster.place }, view.summary, view.body);
    view.details.addEventListener("toggle", () => {
      if (view.details.open && !view.rendered) drawBody(view);
    });
    drawSummary(view);
    return view;
  }

  function redrawSummary() {
    replace(summaryBox, onDutyCard([...views.values()].map((v) => v.roster)));
  }

  async function settle(view, error) {
    if (error instanceof ApiError && error.status === 412) {
      try {
        update(view, await api(rosterPath(view.roster.place)));
        redrawSummary();
      } catch {
        await load();
      }
      say(view.message, "Not saved: someone changed this roster since the page read it. It now shows what it is: make your change again.", false);
      return;
    }
    say(view.message, error instanceof ApiError ? error.detail : String(error), false);
  }

  async function change(view, mutate, what) {
    const body = bodyOf(view.roster);
    mutate(body);
    const problem = boundsProblem(body);
    if (problem) {
      say(view.message, `Not sent: ${problem}`, false);
      return;
    }
    try {
      const updated = await api(rosterPath(view.roster.place), { method: "PUT", body, headers: { "If-Match": `"${view.roster.revision}"` } });
      update(view, updated);
      redrawSummary();
      say(view.message, `${view.roster.place}: ${what}.`, true);
    } catch (error) {
      await settle(view, error);
    }
  }

  async function removeRoster(view) {
    const at = view.roster.place;
    if (!confirm(`Delete the duty roster of ${at}? Nobody of it will be told of alerts any more.`)) return;
    try {
      await api(rosterPath(at), { method: "DELETE", headers: { "If-Match": `"${view.roster.revision}"` } });
      say(message, `Deleted the roster of ${at}.`, true);
      await load();
    } catch (error) {
      await settle(view, error);
    }
  }

  async function create(at, body) {
    const problem = boundsProblem(body);
    if (problem) {
      say(createMessage, `Not sent: ${problem}`, false);
      return;
    }
    try {
      const made = await api(rosterPath(at), { method: "PUT", body, headers: { "If-None-Match": "*" } });
      say(createMessage, `Created the roster of ${made.place}.`, true);
      await load(made.place);
    } catch (error) {
      say(createMessage, error instanceof ApiError ? error.detail : String(error), false);
    }
  }

  async function load(open = null) {
    const rosters = await all("/rosters", { under: place }, MAX_ROSTERS);
    if (!ctx.current()) return;
    const fresh = new Set(rosters.map((r) => r.place));
    for (const known of [...views.keys()]) if (!fresh.has(known)) views.delete(known);
    const unfold = rosters.length <= OPEN_ALL_UP_TO && views.size === 0;
    for (const roster of rosters) {
      const view = views.get(roster.place);
      if (view) update(view, roster);
      else views.set(roster.place, makeView(roster));
      if (unfold || roster.place === open) views.get(roster.place).details.open = true;
    }
    const ordered = rosters.map((r) => views.get(r.place).details);
    replace(
      listBox,
      ordered.length ? ordered : h("p", { class: "quiet" }, `No duty rosters ${place ? `at or below ${place}` : "yet"}.`),
      rosters.length >= MAX_ROSTERS ? h("p", { class: "quiet" }, `Showing the first ${MAX_ROSTERS} rosters: choose a place to see the rest.`) : null,
    );
    redrawSummary();
  }

  await load();
  if (!ctx.current()) return;
  const scope = place || ctx.me.place;
  replace(
    main,
    h("h1", {}, "Duty rosters ", h("span", { class: "quiet" }, scope ? `at or below ${scope}` : "everywhere")),
    crumbs(place),
    message,
    summaryBox,
    canEdit
      ? h("details", { class: "card", id: "new-roster" }, h("summary", {}, h("b", {}, "New roster")), createMessage, newRosterForm(scope, channels, create))
      : null,
    listBox,
  );
  ctx.every(REFRESH_MS, () => load().catch(() => {}));
}
