// The duty roster page's edits: the forms an operator fills (a person, a weekly shift, a
// one-off override, a new roster) and the checks made before anything is sent. The checks
// are the API's own bounds (controller/notify/config.py), so the page never sends what the
// API would refuse for its size; what only the API can judge (an address for a channel's
// kind, a time zone's name) comes back as its 422 message, shown as it is.

import { h } from "./dom.js";

// The API's bounds: tests/console/test_roster_bounds.py keeps them equal to the Python ones.
// (JSON inside the module so that the test can read it; patterns are HTML `pattern`s.)
export const BOUNDS = {
  "people": 200,
  "shifts": 1000,
  "overrides": 500,
  "contacts_per_person": 4,
  "person_id_pattern": "[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}",
  "person_name_chars": 64,
  "contact_to_chars": 254,
  "roster_name_chars": 128,
  "timezone_chars": 64,
  "place_pattern": "[a-z0-9][a-z0-9_\\-]*(/[a-z0-9][a-z0-9_\\-]*){0,4}",
  "place_chars": 255,
  "override_days": 366,
  "layers_at_depth": {"1": ["city"], "2": ["district"], "3": ["street"], "4": ["grid", "community"], "5": ["grid"]}
};

export const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
export const DEFAULT_TIMEZONE = "Asia/Shanghai";

/** What a PUT takes: the roster as read, without what the API adds. */
export function bodyOf(roster) {
  return {
    layer: roster.layer,
    name: roster.name,
    timezone: roster.timezone,
    people: roster.people.map((p) => ({ id: p.id, name: p.name, contacts: p.contacts.map((c) => ({ channel: c.channel, to: c.to ?? null })) })),
    shifts: roster.shifts.map((s) => ({ person: s.person, days: [...s.days], start: s.start, end: s.end })),
    overrides: roster.overrides.map((o) => ({ person: o.person, start: o.start, end: o.end })),
  };
}

/** "2026-12-24T20:00:00" as minutes on a wall clock (no zone: both ends share the roster's). */
function wallMinutes(text) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(text);
  return m ? Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]) / 60000 : NaN;
}

/** Why the API would refuse this roster for its size or shape (null: it would not). */
export function boundsProblem(body) {
  const b = BOUNDS;
  if (body.people.length < 1) return "people: a roster needs at least one person (delete the roster instead)";
  if (body.people.length > b.people) return `people: at most ${b.people} a roster`;
  if (body.shifts.length > b.shifts) return `shifts: at most ${b.shifts} a roster`;
  if (body.overrides.length > b.overrides) return `overrides: at most ${b.overrides} a roster`;
  if ((body.name || "").length > b.roster_name_chars) return `name: at most ${b.roster_name_chars} characters`;
  const idPattern = new RegExp(`^(?:${b.person_id_pattern})$`);
  for (const [i, p] of body.people.entries()) {
    if (!idPattern.test(p.id)) return `people[${i}].id: ${JSON.stringify(p.id)} is not letters, digits and _.- (up to 64, a letter or digit first)`;
    if (!p.name || p.name.length > b.person_name_chars) return `people[${i}].name: 1 to ${b.person_name_chars} characters`;
    if (p.contacts.length < 1 || p.contacts.length > b.contacts_per_person) return `people[${i}].contacts: 1 to ${b.contacts_per_person} channels a person`;
    for (const c of p.contacts) {
      if (c.to !== null && (c.to.length < 1 || c.to.length > b.contact_to_chars)) return `people[${i}].contacts: an address is 1 to ${b.contact_to_chars} characters`;
    }
  }
  for (const [i, s] of body.shifts.entries()) {
    if (!s.days.length) return `shifts[${i}].days: pick at least one day`;
  }
  for (const [i, o] of body.overrides.entries()) {
    const span = wallMinutes(o.end) - wallMinutes(o.start);
    if (!(span > 0)) return `overrides[${i}]: the end is not after the start`;
    if (Math.floor(span / 1440) > b.override_days) return `overrides[${i}]: longer than a year (at most ${b.override_days} days)`;
  }
  return null;
}

/** The layers a place of this depth may hold (a 4-level place: a grid or a community). */
export function layersFor(place) {
  return BOUNDS.layers_at_depth[String(place.split("/").length)] || [];
}

/** Now on the roster's wall clock, as a datetime-local value ("2026-12-09T10:00"). */
export function wallNow(zone, ms = Date.now()) {
  try {
    const parts = new Intl.DateTimeFormat("en-CA", {
      timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    }).formatToParts(new Date(ms));
    const get = (type) => parts.find((p) => p.type === type).value;
    return `${get("year")}-${get("month")}-${get("day")}T${get("hour")}:${get("minute")}`;
  } catch {
    return new Date(ms).toISOString().slice(0, 16); // an unknown zone: the API will say so
  }
}

/** A wall-clock time plus some hours, on the same (zone-less) wall clock. */
export function wallPlus(text, hours) {
  return new Date((wallMinutes(text) + hours * 60) * 60000).toISOString().slice(0, 16);
}

/** An override's time as a person reads it: "2026-12-24 20:00" (and its offset, if any). */
export function wallText(text) {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(?::(\d{2})(?:\.\d+)?)?(.*)$/.exec(text || "");
  if (!m) return text;
  const seconds = m[3] && m[3] !== "00" ? `:${m[3]}` : "";
  return `${m[1]} ${m[2]}${seconds}${m[4] ? ` (${m[4] === "Z" ? "UTC" : m[4]})` : ""}`;
}

/** "mon–fri", "every day", or "mon, wed, sat". */
export function daysText(days) {
  const index = days.map((d) => DAYS.indexOf(d)).sort((a, b) => a - b);
  if (index.length === 7) return "every day";
  const run = index.length >= 3 && index.every((d, i) => i === 0 || d === index[i - 1] + 1);
  return run ? `${DAYS[index[0]]}–${DAYS[index[index.length - 1]]}` : index.map((d) => DAYS[d]).join(", ");
}

/** "08:00–20:00", "20:00–08:00 next day", or "all day". */
export function hoursText(shift) {
  if (shift.start === shift.end) return shift.start === "00:00" ? "all day" : `${shift.start} to ${shift.end} next day`;
  return shift.end < shift.start ? `${shift.start}–${shift.end} next day` : `${shift.start}–${shift.end}`;
}

function personOptions(roster) {
  return roster.people.map((p) => h("option", { value: p.id }, `${p.name} (${p.id})`));
}

function field(label, control) {
  return h("label", { class: "field" }, h("span", {}, label), control);
}

function submitting(form, handler) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await handler();
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

/** One channel of a person: a configured channel by name and, where its kind takes one, the
 * address. Channels come from GET /notify/channels (names and kinds; never their URLs). */
function contactRow(channels) {
  const select = h("select", { "aria-label": "channel", "data-field": "channel", required: true },
    channels.map((c) => h("option", { value: c.name, "data-kind": c.kind }, `${c.name} (${c.kind})`)));
  const to = h("input", { type: "text", "aria-label": "address", "data-field": "to", maxlength: String(BOUNDS.contact_to_chars) });
  const fit = () => {
    const kind = select.selectedOptions[0]?.dataset.kind;
    to.disabled = kind === "group"; // a group bot: everyone reads the group, no address
    to.required = kind === "email" || kind === "sms";
    to.placeholder = { email: "e-mail address", sms: "phone number", webhook: "id (optional)", group: "no address" }[kind] || "address";
    if (to.disabled) to.value = "";
  };
  select.addEventListener("change", fit);
  fit();
  return h("span", { class: "contact" }, select, to);
}

function contactsOf(box) {
  return [...box.querySelectorAll(".contact")].map((row) => {
    const to = row.querySelector("[data-field=to]");
    return { channel: row.querySelector("[data-field=channel]").value, to: to.disabled || !to.value.trim() ? null : to.value.trim() };
  });
}

function contactsEditor(channels) {
  const box = h("span", { class: "contacts" }, contactRow(channels));
  const more = h("button", { type: "button", class: "link", "data-edit": "more-channel" }, "Another channel");
  more.addEventListener("click", () => {
    box.append(contactRow(channels));
    more.disabled = box.children.length >= BOUNDS.contacts_per_person;
  });
  return { box, more, read: () => contactsOf(box) };
}

function personFields(channels) {
  const id = h("input", { type: "text", "data-field": "person-id", required: true, maxlength: "64", pattern: BOUNDS.person_id_pattern, placeholder: "id, like li-wei", "aria-label": "person id" });
  const name = h("input", { type: "text", "data-field": "person-name", required: true, maxlength: String(BOUNDS.person_name_chars), placeholder: "name", "aria-label": "person name" });
  const contacts = contactsEditor(channels);
  return {
    nodes: [field("Id", id), field("Name", name), field("Channels", h("span", {}, contacts.box, contacts.more))],
    read: () => ({ id: id.value.trim(), name: name.value.trim(), contacts: contacts.read() }),
  };
}

function noChannels() {
  return h("p", { class: "quiet" }, "No channels are configured ([[notify.channels]] in the controller's config): a person needs one.");
}

/** Add a person: `change(mutate, what)` applies the edit to the roster as read and saves. */
export function addPersonForm(roster, channels, change) {
  if (!channels.length) return noChannels();
  const person = personFields(channels);
  const full = roster.people.length >= BOUNDS.people;
  return submitting(
    h("form", { class: "edit-form", "data-edit": "add-person" }, h("b", {}, "Add a person"), person.nodes,
      h("button", { type: "submit", disabled: full, title: full ? `at most ${BOUNDS.people} people a roster` : null }, "Add person")),
    () => {
      const added = person.read();
      return change((body) => body.people.push(added), `added ${added.name}`);
    },
  );
}

export function addShiftForm(roster, change) {
  const who = h("select", { "data-field": "person", "aria-label": "person" }, personOptions(roster));
  const days = DAYS.map((d) => h("label", { class: "day" }, h("input", { type: "checkbox", value: d, "data-day": d, checked: DAYS.indexOf(d) < 5 }), d));
  const start = h("input", { type: "time", "data-field": "start", required: true, value: "08:00", "aria-label": "shift start" });
  const end = h("input", { type: "time", "data-field": "end", required: true, value: "20:00", "aria-label": "shift end" });
  const full = roster.shifts.length >= BOUNDS.shifts;
  return submitting(
    h("form", { class: "edit-form", "data-edit": "add-shift" }, h("b", {}, "Add a weekly shift"), who, h("span", { class: "days" }, days),
      field("From", start), field("to", end),
      h("button", { type: "submit", disabled: full, title: full ? `at most ${BOUNDS.shifts} shifts a roster` : null }, "Add shift"),
      h("span", { class: "quiet" }, ` times in ${roster.timezone}; an end at or before the start runs past midnight`)),
    () => {
      const shift = { person: who.value, days: days.map((l) => l.firstChild).filter((c) => c.checked).map((c) => c.value), start: start.value, end: end.value };
      return change((body) => body.shifts.push(shift), `added a shift of ${shift.person}`);
    },
  );
}

export function addOverrideForm(roster, change) {
  const who = h("select", { "data-field": "person", "aria-label": "person" }, personOptions(roster));
  const from = wallNow(roster.timezone).slice(0, 14) + "00";
  const start = h("input", { type: "datetime-local", "data-field": "start", required: true, value: from, "aria-label": "override start" });
  const end = h("input", { type: "datetime-local", "data-field": "end", required: true, value: wallPlus(from, 12), "aria-label": "override end" });
  const full = roster.overrides.length >= BOUNDS.overrides;
  return submitting(
    h("form", { class: "edit-form", "data-edit": "add-override" }, h("b", {}, "Add a one-off override"), who,
      field("From", start), field("to", end),
      h("button", { type: "submit", disabled: full, title: full ? `at most ${BOUNDS.overrides} overrides a roster` : null }, "Add override"),
      h("span", { class: "quiet" }, ` times in ${roster.timezone}; while an override runs, the weekly shifts do not`)),
    () => {
      const override = { person: who.value, start: `${start.value}:00`, end: `${end.value}:00` };
      return change((body) => body.overrides.push(override), `added an override of ${override.person}`);
    },
  );
}

/** A new roster: its place (inside the token's), layer, name, time zone and first person;
 * `create(place, body)` sends it (only if there is none there yet). */
export function newRosterForm(scope, channels, create) {
  if (!channels.length) return noChannels();
  const place = h("input", { type: "text", "data-field": "place", required: true, maxlength: String(BOUNDS.place_chars), pattern: BOUNDS.place_pattern, value: scope ? `${scope}/` : "", placeholder: "city/district/street/grid", "aria-label": "place" });
  const layer = h("select", { "data-field": "layer", "aria-label": "layer" });
  const fitLayers = () => {
    const allowed = layersFor(place.value.trim().replace(/\/$/, ""));
    const keep = layer.value;
    layer.replaceChildren(...allowed.map((l) => h("option", { value: l }, l)));
    if (allowed.includes(keep)) layer.value = keep;
  };
  place.addEventListener("input", fitLayers);
  fitLayers();
  const name = h("input", { type: "text", "data-field": "name", maxlength: String(BOUNDS.roster_name_chars), placeholder: "name (optional)", "aria-label": "roster name" });
  const zone = h("input", { type: "text", "data-field": "timezone", required: true, maxlength: String(BOUNDS.timezone_chars), value: DEFAULT_TIMEZONE, "aria-label": "time zone" });
  const person = personFields(channels);
  return submitting(
    h("form", { class: "edit-form", "data-edit": "new-roster" },
      field("Place", place), field("Layer", layer), field("Name", name), field("Time zone (IANA)", zone),
      h("b", {}, "First person"), person.nodes,
      h("button", { type: "submit" }, "Create roster")),
    () => {
      const at = place.value.trim();
      const body = { layer: layer.value || null, name: name.value.trim(), timezone: zone.value.trim(), people: [person.read()], shifts: [], overrides: [] };
      return create(at, body);
    },
  );
}
