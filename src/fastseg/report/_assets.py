"""The report page's style sheet and script, inlined into every page (no network, no
files beside it). The script does nothing on load but attach three listeners: sorting
reads the rows into an array on the first click, the filter toggles one class."""

CSS = """
:root { --fg:#1d2330; --muted:#5b6475; --line:#d9dde5; --bg:#f6f7f9; --flag:#b3261e;
        --flagbg:#fdecea; --ok:#1b7f3b; --head:#eef1f5; }
* { box-sizing: border-box; }
body { margin: 0; padding: 16px 20px 40px; font: 14px/1.4 system-ui, -apple-system,
       "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg);
       background: var(--bg); }
h1 { font-size: 20px; margin: 0 0 2px; }
h2 { font-size: 15px; margin: 0 0 8px; }
.sub { color: var(--muted); margin: 0 0 14px; overflow-wrap: anywhere; }
.panels { display: flex; flex-wrap: wrap; gap: 14px; margin-bottom: 14px; }
.panel { background: #fff; border: 1px solid var(--line); border-radius: 6px;
         padding: 12px 14px; flex: 1 1 340px; min-width: 0; }
.panel dl { display: grid; grid-template-columns: max-content 1fr; gap: 3px 14px; margin: 0; }
.panel dl.card { grid-template-columns: max-content minmax(0, 1fr) max-content minmax(0, 1fr); }
.panel dt { color: var(--muted); }
.panel dd { margin: 0; overflow-wrap: anywhere; }
.panel p { margin: 4px 0; }
.note { color: var(--flag); }
.controls { display: flex; gap: 18px; align-items: center; margin: 6px 0 8px; }
.controls label { cursor: pointer; user-select: none; }
#count { color: var(--muted); }
table { border-collapse: collapse; background: #fff; border: 1px solid var(--line);
        width: 100%; table-layout: fixed; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left;
         vertical-align: top; }
th { background: var(--head); position: sticky; top: 0; z-index: 1; white-space: nowrap;
     font-weight: 600; }
th[data-sort="num"]:not([data-desc]) { text-align: right; }
th button { font: inherit; color: inherit; background: none; border: 0; padding: 0;
            cursor: pointer; }
th button::after { content: " \\2195"; color: var(--muted); font-size: 11px; }
th[aria-sort="ascending"] button::after { content: " \\25B2"; color: var(--fg); }
th[aria-sort="descending"] button::after { content: " \\25BC"; color: var(--fg); }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.size { white-space: normal; }
td .meta { color: var(--muted); font-size: 12px; }
td { overflow-wrap: anywhere; }
tr.flagged td:first-child { box-shadow: inset 4px 0 0 var(--flag); }
tbody.only-flagged tr:not(.flagged) { display: none; }
.pics { display: flex; flex-wrap: wrap; gap: 6px; }
.pic { display: flex; flex-direction: column; align-items: center; font-size: 11px;
       color: var(--muted); }
.thumb { display: block; width: 96px; height: 96px; background: #111; border-radius: 3px;
         overflow: hidden; }
.thumb img { width: 96px; height: 96px; object-fit: contain; display: block; }
.missing { display: flex; align-items: center; justify-content: center; width: 96px;
           height: 96px; border: 1px dashed var(--line); color: var(--muted); font-size: 11px;
           text-align: center; }
.status-done { color: var(--ok); }
.status-failed, .status-skipped { color: var(--flag); font-weight: 600; }
ul.flags { list-style: none; margin: 0; padding: 0; }
ul.flags li { background: var(--flagbg); color: var(--flag); border-radius: 3px;
              padding: 1px 6px; margin: 0 0 3px; overflow-wrap: anywhere; }
ul.flags b { text-transform: uppercase; font-size: 10px; letter-spacing: .04em;
             margin-right: 4px; }
.none { color: var(--muted); }
#lightbox { position: fixed; inset: 0; background: rgba(10, 12, 16, .88); z-index: 10;
            display: flex; align-items: center; justify-content: center; cursor: zoom-out; }
#lightbox[hidden] { display: none; }
#lightbox figure { margin: 0; text-align: center; color: #eee; }
#lightbox img { width: 94vw; height: 86vh; object-fit: contain; display: block; }
#lightbox figcaption { margin-top: 6px; overflow-wrap: anywhere; }
"""

JS = """
(function () {
  "use strict";
  var table = document.getElementById("results");
  var tbody = table.tBodies[0];
  var rows = null;              // the rows as an array, read on the first sort
  var state = {col: -1, dir: 1};
  function sortKey(tr, col, numeric) {
    var cell = tr.cells[col];
    var v = cell.getAttribute("data-v");
    if (v === null) { v = cell.textContent; }
    if (numeric) { var n = parseFloat(v); return isNaN(n) ? null : n; }
    return v.toLowerCase();
  }
  function sortBy(th) {
    var col = th.cellIndex, numeric = th.getAttribute("data-sort") === "num";
    if (rows === null) { rows = Array.prototype.slice.call(tbody.rows); }
    state.dir = state.col === col ? -state.dir : (numeric && th.hasAttribute("data-desc")
                                                  ? -1 : 1);
    state.col = col;
    var dir = state.dir;
    var keyed = rows.map(function (tr, i) { return [sortKey(tr, col, numeric), i, tr]; });
    keyed.sort(function (a, b) {
      if (a[0] === b[0]) { return a[1] - b[1]; }
      if (a[0] === null) { return 1; }          // blanks last either way
      if (b[0] === null) { return -1; }
      return (a[0] < b[0] ? -1 : 1) * dir;
    });
    rows = keyed.map(function (k) { return k[2]; });
    var frag = document.createDocumentFragment();
    rows.forEach(function (tr) { frag.appendChild(tr); });
    tbody.appendChild(frag);
    var ths = table.tHead.rows[0].cells;
    for (var i = 0; i < ths.length; i++) { ths[i].removeAttribute("aria-sort"); }
    th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
  }
  table.tHead.addEventListener("click", function (e) {
    var th = e.target.closest("th");
    if (th && th.hasAttribute("data-sort")) { sortBy(th); }
  });
  var only = document.getElementById("only-flagged");
  var count = document.getElementById("count");
  function filter() {
    tbody.classList.toggle("only-flagged", only.checked);
    count.textContent = only.checked ? count.getAttribute("data-flagged")
                                     : count.getAttribute("data-all");
  }
  only.addEventListener("change", filter);
  if (only.checked) { filter(); }   // a browser restoring the box after a reload
  var box = document.getElementById("lightbox");
  var big = box.querySelector("img"), caption = box.querySelector("figcaption");
  tbody.addEventListener("click", function (e) {
    var a = e.target.closest("a.thumb");
    if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) { return; }
    e.preventDefault();
    big.src = a.getAttribute("href");
    big.alt = a.getAttribute("data-caption");
    caption.textContent = a.getAttribute("data-caption");
    box.hidden = false;
  });
  function close() { box.hidden = true; big.removeAttribute("src"); }
  box.addEventListener("click", close);
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && !box.hidden) { close(); }
  });
})();
"""
