/**
 * The inspector's one page: markup, styles and script, all inline, so the page works with no
 * network beyond this server (its Content-Security-Policy forbids anything else).
 */
import { PAGE_SCRIPT } from "./page-script.js";

export { PAGE_SCRIPT };

/** What the page shows in its header. */
export interface PageOptions {
  readonly prefix: string;
  readonly user: string;
  readonly stately: boolean;
}

const STYLE = `
:root { --fg:#1b1f24; --muted:#5f6b7a; --line:#d8dee6; --bg:#f6f8fa; --card:#fff; --accent:#1565c0; --bad:#c62828; --ok:#2e7d32; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color:var(--fg); background:var(--bg); }
header { display:flex; align-items:center; gap:16px; padding:8px 16px; background:#102a43; color:#fff; }
header h1 { font-size:16px; margin:0; font-weight:600; }
header .meta { color:#bcccdc; font-size:12px; }
header .conn { margin-left:auto; font-size:12px; display:flex; align-items:center; gap:6px; }
header .dot { width:10px; height:10px; border-radius:50%; background:#e53935; display:inline-block; }
header .conn[data-connected="1"] .dot { background:#43a047; }
main { display:grid; grid-template-columns: minmax(340px, 440px) minmax(0, 1fr); gap:12px; padding:12px; align-items:start; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:10px 12px; }
h2 { font-size:15px; margin:0 0 8px; }
h3 { font-size:13px; margin:10px 0 6px; color:var(--muted); text-transform:uppercase; letter-spacing:.04em; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:3px 6px; border-bottom:1px solid var(--line); white-space:nowrap; }
#jobs-card { overflow-x:auto; }
#jobs td, #jobs th { padding:3px 4px; font-size:13px; }
th { font-size:12px; color:var(--muted); font-weight:600; }
#jobs tbody tr { cursor:pointer; }
#jobs tbody tr:hover { background:#eef4fb; }
#jobs tbody tr.selected { background:#dbeafe; }
.badge { display:inline-block; padding:0 6px; border-radius:10px; font-size:12px; font-weight:600; background:#e3f2fd; color:#0d47a1; }
.badge[data-state="COMPLETED"] { background:#e8f5e9; color:var(--ok); }
.badge[data-state="FAILED"], .badge[data-state="NODE_FAIL"], .badge[data-state="TIMEOUT"] { background:#ffebee; color:var(--bad); }
.badge[data-state="CANCELLED"] { background:#fff3e0; color:#e65100; }
.badge[data-state="PENDING"] { background:#eceff1; color:#455a64; }
.empty { color:var(--muted); padding:8px 0; }
#detail > * + * { margin-top:12px; }
.row { display:flex; gap:12px; flex-wrap:wrap; align-items:flex-start; }
.chart { background:#fff; border:1px solid var(--line); border-radius:6px; padding:4px; overflow:auto; max-width:100%; }
.chart svg { display:block; max-width:100%; height:auto; }
.charts { display:flex; flex-wrap:wrap; gap:8px; align-items:flex-start; }
.charts > div { flex:1 1 0; min-width:0; }
.charts .caption { font-size:12px; color:var(--muted); margin:2px 0 4px; }
#notice { border-left:4px solid var(--bad); background:#fff5f5; }
#notice pre, #summary pre { margin:6px 0 0; font:12px/1.35 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; white-space:pre-wrap; }
.grid-wrap { position:relative; }
#grid-canvas { display:block; border:1px solid var(--line); background:#fafafa; cursor:crosshair; image-rendering:pixelated; }
#grid-tip { position:absolute; pointer-events:none; background:#102a43; color:#fff; font-size:12px; padding:2px 6px; border-radius:4px; display:none; white-space:nowrap; }
.legend { display:flex; flex-wrap:wrap; gap:4px 14px; margin-top:6px; font-size:12px; }
.legend .sw { display:inline-block; width:12px; height:12px; border-radius:2px; vertical-align:-2px; margin-right:4px; border:1px solid rgba(0,0,0,.15); }
.legend .ids { color:var(--muted); }
.scrub { display:flex; align-items:center; gap:10px; }
.scrub input[type=range] { flex:1; }
.scrub .where { font-size:12px; color:var(--muted); min-width:260px; }
#replay-banner { display:none; font-size:12px; padding:4px 8px; background:#fff8e1; border:1px solid #ffe082; border-radius:4px; margin-top:6px; }
#detail[data-mode="replay"] #replay-banner { display:block; }
button { font:inherit; font-size:12px; padding:3px 10px; border-radius:4px; border:1px solid var(--line); background:#fff; cursor:pointer; }
button:hover { background:#eef4fb; }
#timeline { max-height:320px; overflow:auto; }
#timeline tr { cursor:pointer; }
#timeline tr.published td { color:#6a1b9a; }
#timeline tr.current { background:#fff3c4; }
#timeline tr.future td { opacity:.45; }
#timeline td.t { color:var(--muted); font-variant-numeric:tabular-nums; }
#task .row > .chart { flex:1 1 520px; min-width:0; }
.facts { display:grid; grid-template-columns:max-content 1fr; gap:2px 12px; font-size:13px; }
.facts dt { color:var(--muted); }
.facts dd { margin:0; font-variant-numeric:tabular-nums; }
.tabs { display:flex; gap:6px; margin-bottom:6px; }
.tabs button[aria-selected="true"] { background:#dbeafe; border-color:#90caf9; }
.problem { color:var(--bad); font-size:12px; }
`;

/** The page's HTML; the script and styles are inline. */
export function pageHtml(opts: PageOptions): string {
  const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>muster inspector</title>
<style>${STYLE}</style>
</head>
<body data-prefix="${esc(opts.prefix)}" data-stately="${opts.stately ? "1" : "0"}">
<header>
  <h1>muster inspector</h1>
  <span class="meta">prefix ${esc(opts.prefix)} · user ${esc(opts.user)}${opts.stately ? " · Stately bridge on /stately" : ""}</span>
  <span class="conn" id="conn" data-connected="0"><span class="dot"></span><span id="conn-text">connecting…</span></span>
</header>
<main>
  <section class="card" id="jobs-card">
    <h2>Jobs</h2>
    <table id="jobs"><thead><tr><th>Job</th><th>Name</th><th>State</th><th>Reason</th><th>ExitCode</th><th>Tasks</th></tr></thead><tbody></tbody></table>
    <div class="empty" id="jobs-empty">No jobs yet.</div>
    <div class="problem" id="problem"></div>
  </section>
  <section id="detail" data-mode="live">
    <div class="card empty" id="placeholder">Select a job.</div>
  </section>
</main>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}
