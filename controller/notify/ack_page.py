"""The small mobile page behind an acknowledgement link: server-rendered HTML, no script,
one stylesheet (``/m/ack.css``), large buttons, readable on a phone in the sun."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from controller.notify.acks import AckPage
from controller.notify.links import ACK_PATH

STYLESHEET_PATH = "/m/ack.css"
# No script at all; styles and form posts only to ourselves; never framed; no referrer (the
# token is in the URL).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self';"
    " base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
}
BUTTONS = {
    "acknowledge": "Acknowledge",
    "ack_handling": "Acknowledge and start handling",
    "handling": "Start handling",
}

STYLESHEET = """
:root { color-scheme: light; font-family: system-ui, -apple-system, "Noto Sans SC", sans-serif; }
body { margin: 0; background: #f4f5f7; color: #1b1d21; font-size: 17px; line-height: 1.4; }
main { max-width: 32rem; margin: 0 auto; padding: 0 0 2rem; }
.banner { padding: 1rem 1rem 0.9rem; color: #fff; background: #4a5568; }
.banner h1 { margin: 0; font-size: 1.3rem; }
.banner.red { background: #c53030; } .banner.orange { background: #dd6b20; }
.banner.yellow { background: #d69e2e; color: #1b1d21; } .banner.blue { background: #2b6cb0; }
.banner.green { background: #2f855a; } .banner.refused { background: #4a5568; }
section { background: #fff; margin: 0.75rem; padding: 0.8rem 1rem; border-radius: 10px; }
dl { margin: 0; display: grid; grid-template-columns: max-content 1fr; gap: 0.3rem 0.8rem; }
dt { color: #5a6270; } dd { margin: 0; overflow-wrap: anywhere; }
.done { background: #e6fffa; border: 2px solid #2c7a7b; font-weight: 600; }
form { margin: 0.75rem; display: grid; gap: 0.75rem; }
button { font: inherit; font-size: 1.1rem; font-weight: 600; padding: 0.95rem; border: 0;
         border-radius: 10px; background: #1a56db; color: #fff; width: 100%; }
button.secondary { background: #fff; color: #1a56db; border: 2px solid #1a56db; }
p.small, li { color: #5a6270; font-size: 0.9rem; }
ul { padding-left: 1.1rem; margin: 0.3rem 0 0; }
"""


def _time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def render_page(page: AckPage, token: str) -> str:
    alert = page.alert
    colour = "refused" if page.problem is not None else str(alert["colour"]) if alert else "refused"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<meta name='referrer' content='no-referrer'>",
        f"<title>{escape(page.heading)} · edgewatch</title>",
        f"<link rel='stylesheet' href='{STYLESHEET_PATH}'></head><body><main>",
        f"<div class='banner {escape(colour)}'><h1>{escape(page.heading)}</h1></div>",
    ]
    if page.done:
        parts.append(f"<section class='done' role='status'>{escape(page.done)}</section>")
    if page.lines:
        parts.append(
            "<section>" + "".join(f"<p>{escape(x)}</p>" for x in page.lines) + "</section>"
        )
    if alert is not None:
        value = "" if alert["value"] is None else f" = {alert['value']:g}"
        rows = [
            ("Alert", f"#{alert['alert_id']}"),
            ("State", str(alert["alert_state"])),
            ("Colour", f"{alert['colour']} (peak {alert['peak_colour']})"),
            ("Risk point", str(alert["point_name"] or alert["point"])),
            ("Category", str(alert["category"] or "-")),
            ("Place", str(alert["alert_place"])),
            ("Reading", f"{alert['device']} {alert['metric']}{value}" if alert["metric"] else "-"),
            ("Raised", _time(alert["raised_ms"])),
        ]
        cells = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
        parts.append(f"<section><dl>{cells}</dl></section>")
    if page.actions:
        parts.append(f"<form method='post' action='{ACK_PATH}/{escape(token)}'>")
        parts.append(f"<input type='hidden' name='seen' value='{page.seen}'>")
        for index, action in enumerate(page.actions):
            css = "" if index == 0 else " class='secondary'"
            parts.append(
                f"<button type='submit' name='action' value='{action}'{css}>"
                f"{escape(BUTTONS[action])}</button>"
            )
        parts.append("</form>")
    if page.history:
        items = "".join(f"<li>{escape(h)}</li>" for h in page.history)
        parts.append(f"<section><p class='small'>Who acted</p><ul>{items}</ul></section>")
    parts.append("</main></body></html>")
    return "".join(parts)
