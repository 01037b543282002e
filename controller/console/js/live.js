// The live alert stream: a ticket from POST /alerts/stream-ticket (EventSource cannot send
// the token), then server-sent events; on any error a fresh ticket and a new connection.
// It keeps the alerts it has seen, so the header badge and the alerts page share one stream.

import { api } from "./api.js";

export const RANK = { green: 0, blue: 1, yellow: 2, orange: 3, red: 4 };
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 10000;

export class LiveAlerts extends EventTarget {
  constructor(me) {
    super();
    this.me = me;
    this.alerts = new Map();
    this.source = null;
    this.stopped = true;
    this.cursor = null;
    this.retryMs = RETRY_FIRST_MS;
    this.timer = null;
    this.state = "connecting";
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.source?.close();
    this.source = null;
  }

  setStatus(state) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("status", { detail: state }));
  }

  async connect() {
    if (this.stopped) return;
    this.setStatus("connecting");
    let ticket;
    try {
      ticket = await api("/alerts/stream-ticket", { method: "POST" });
    } catch {
      this.retry();
      return;
    }
    if (this.stopped) return;
    const url = this.cursor === null ? ticket.stream : `${ticket.stream}&after=${this.cursor}`;
    const source = new EventSource(url);
    this.source = source;
    source.addEventListener("ready", async (event) => {
      this.cursor = JSON.parse(event.data).cursor;
      this.retryMs = RETRY_FIRST_MS;
      this.setStatus("live");
      await this.reload();
    });
    source.addEventListener("alert", (event) => {
      if (event.lastEventId) this.cursor = Number(event.lastEventId);
      this.apply(JSON.parse(event.data));
    });
    source.onerror = () => {
      source.close();
      if (this.source === source) this.source = null;
      this.setStatus("offline");
      this.retry();
    };
  }

  retry() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
  }

  /** Take an alert as it now is (from the stream or the API); older news is ignored. */
  apply(alert, { quiet = false } = {}) {
    const known = this.alerts.get(alert.id);
    if (known && known.updated_ms > alert.updated_ms) return;
    const fresh = !known;
    this.alerts.set(alert.id, alert);
    if (!quiet) this.dispatchEvent(new CustomEvent("change", { detail: { alert, fresh } }));
  }

  /** The open alerts from the API (on every (re)connect: nothing missed while away). */
  async reload() {
    let open;
    try {
      open = await api("/alerts", { params: { open: true, limit: 1000 } });
    } catch {
      return;
    }
    const ids = new Set(open.map((alert) => alert.id));
    for (const [id, alert] of this.alerts) {
      if (alert.open && !ids.has(id)) this.alerts.delete(id);
    }
    for (const alert of open) this.apply(alert, { quiet: true });
    this.dispatchEvent(new CustomEvent("change", { detail: { alert: null, fresh: false } }));
  }

  openAlerts() {
    return [...this.alerts.values()]
      .filter((alert) => alert.open)
      .sort((a, b) => RANK[b.colour] - RANK[a.colour] || b.raised_ms - a.raised_ms);
  }

  openCount() {
    return this.openAlerts().length;
  }

  worstOpenColour() {
    const open = this.openAlerts();
    return open.length ? open[0].colour : "green";
  }
}
