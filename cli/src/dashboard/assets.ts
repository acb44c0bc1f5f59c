/**
 * The dashboard's stylesheet and script, served from the same origin (the
 * Content-Security-Policy allows nothing else): no build step, no external network.
 * The script only makes the jobs page live; every page works without it.
 *
 * @module
 */

/** `/assets/dashboard.css`. */
export const DASHBOARD_CSS = `
:root { color-scheme: light; --fg: #1b1f24; --muted: #4a5360; --line: #c9d1d9; --bg: #ffffff;
  --panel: #f4f6f8; --link: #0b4fb3; --focus: #b3470b; --ok: #1a6b2f; --bad: #a31515;
  --warn: #7a4b00; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: var(--bg); }
a { color: var(--link); }
a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible,
summary:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: 0; background: var(--bg); padding: .5rem; }
.skip:focus { left: .5rem; }
header.top { display: flex; flex-wrap: wrap; gap: .5rem 1.25rem; align-items: center;
  padding: .75rem 1rem; border-bottom: 1px solid var(--line); background: var(--panel); }
header.top .brand { font-weight: 700; margin-right: auto; }
header.top nav ul { display: flex; flex-wrap: wrap; gap: 1rem; list-style: none; margin: 0;
  padding: 0; }
header.top nav a[aria-current="page"] { font-weight: 700; }
header.top form { margin: 0; }
main { max-width: 72rem; margin: 0 auto; padding: 1rem; overflow-wrap: anywhere; }
h1 { font-size: 1.5rem; margin: .5rem 0 1rem; overflow-wrap: anywhere; }
h2 { font-size: 1.15rem; }
button, input, select { font: inherit; }
button { padding: .35rem .8rem; border: 1px solid #57606a; border-radius: 4px;
  background: #fff; color: var(--fg); cursor: pointer; }
button.danger { border-color: var(--bad); color: var(--bad); }
input[type=search], input[type=password], select { padding: .35rem .5rem;
  border: 1px solid #57606a; border-radius: 4px; max-width: 100%; }
form.filters { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; margin-bottom: 1rem; }
form.filters label, form.login label { display: block; font-weight: 600; }
form.login { max-width: 24rem; display: grid; gap: .75rem; }
form.login input { width: 100%; }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: .45rem .5rem; border-bottom: 1px solid var(--line);
  vertical-align: top; overflow-wrap: anywhere; }
th { font-size: .9rem; color: var(--muted); }
td.num { font-variant-numeric: tabular-nums; }
.id { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .85rem; }
.state { font-weight: 600; }
.state-succeeded { color: var(--ok); }
.state-failed, .state-damaged { color: var(--bad); }
.state-cancelled, .state-superseded { color: var(--muted); }
.state-running, .state-queued, .state-retry_wait { color: var(--warn); }
progress { width: 100%; max-width: 12rem; height: 1rem; }
.error { color: var(--bad); }
.muted { color: var(--muted); }
.pager { display: flex; gap: 1rem; margin: 1rem 0; }
.empty { padding: 1rem; background: var(--panel); border-radius: 4px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: 0 0 1rem; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; overflow-wrap: anywhere; }
ol.items { list-style: none; padding: 0; margin: 0; display: grid; gap: .75rem; }
.item { border: 1px solid var(--line); border-radius: 6px; padding: .5rem .75rem; min-width: 0; }
.item header { display: flex; flex-wrap: wrap; gap: .25rem 1rem; font-size: .9rem;
  color: var(--muted); }
.item header > * { min-width: 0; overflow-wrap: anywhere; }
.item header .who { font-weight: 700; color: var(--fg); }
.role-user { background: #eef4ff; }
.role-assistant { background: #ffffff; }
.kind-tool_call { background: var(--panel); }
pre { white-space: pre-wrap; overflow-wrap: anywhere; word-break: break-word; margin: .35rem 0;
  font: .875rem/1.45 ui-monospace, SFMono-Regular, Menlo, monospace; max-width: 100%; }
details > summary { cursor: pointer; color: var(--muted); }
.cut { font-size: .85rem; color: var(--muted); }
.live { font-size: .85rem; color: var(--muted); min-height: 1.3em; }
@media (max-width: 640px) {
  table.cards thead { position: absolute; left: -999px; }
  table.cards, table.cards tbody, table.cards tr, table.cards td { display: block; width: 100%; }
  table.cards tr { border: 1px solid var(--line); border-radius: 6px; margin-bottom: .75rem;
    padding: .25rem .5rem; }
  table.cards td { border: 0; padding: .2rem 0; }
  table.cards td::before { content: attr(data-label) ": "; font-weight: 600; color: var(--muted); }
  dl.meta { grid-template-columns: 1fr; }
}
`;

/**
 * `/assets/dashboard.js`: on the jobs page, follows the page's event stream and patches
 * the table with the rows the server rendered (cell by cell, so the focus stays put).
 */
export const DASHBOARD_JS = `"use strict";
(function () {
  var table = document.querySelector("table[data-events]");
  if (!table || typeof EventSource !== "function") return;
  var body = table.tBodies[0];
  var live = document.getElementById("live");
  var empty = document.getElementById("no-jobs");
  function rowFrom(html) {
    var t = document.createElement("template");
    t.innerHTML = "<table><tbody>" + html + "</tbody></table>";
    return t.content.querySelector("tr");
  }
  function patch(tr, fresh) {
    for (var i = 0; i < fresh.cells.length; i++) {
      var cell = tr.cells[i];
      if (!cell) { tr.appendChild(fresh.cells[i].cloneNode(true)); continue; }
      if (cell.innerHTML !== fresh.cells[i].innerHTML) cell.innerHTML = fresh.cells[i].innerHTML;
    }
  }
  var source = new EventSource(table.getAttribute("data-events"));
  source.addEventListener("jobs", function (event) {
    var rows = JSON.parse(event.data).rows;
    var existing = new Map();
    for (var tr of Array.from(body.rows)) existing.set(tr.getAttribute("data-job-id"), tr);
    rows.forEach(function (row, index) {
      var fresh = rowFrom(row.html);
      var tr = existing.get(row.id);
      if (tr) { patch(tr, fresh); existing.delete(row.id); } else { tr = fresh; }
      if (body.rows[index] !== tr) body.insertBefore(tr, body.rows[index] || null);
    });
    existing.forEach(function (tr) { tr.remove(); });
    if (empty) empty.hidden = rows.length > 0;
    table.hidden = rows.length === 0;
    if (live) live.textContent = "Live: updated " + new Date().toLocaleTimeString();
  });
  source.addEventListener("failed", function () {
    if (live) live.textContent = "Live updates stopped; reload the page.";
  });
})();
`;
