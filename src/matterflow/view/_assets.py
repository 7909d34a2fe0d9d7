"""The viewer's stylesheet and script, served from ``/static/`` (no inline script: the pages'
Content-Security-Policy allows scripts from the server only). Plotly comes from the
installed ``plotly`` package (``package_data/plotly.min.js``), never from a CDN."""

CSS = """
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#345;color:#fff;padding:.5em 1em}header a{color:#fff;margin-right:1em}
main{padding:0 1em 2em}h1{font-size:1.4em}h2{color:#345;font-size:1.15em;margin-top:1.5em}
table{border-collapse:collapse;margin:.5em 0;font-size:.88em;background:#fff}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#eef}pre{background:#f3f3f3;padding:.5em;overflow:auto;max-height:30em;font-size:.85em}
.bad{color:#a00}.ok{color:#070}.run{color:#a60}.note{background:#fff3cd;border:1px solid #e0c36c;
padding:.4em .7em;margin:.5em 0}.diff{background:#ffe9b3}.muted{color:#777}
.tree{float:left;width:34%;max-height:85vh;overflow:auto;font-size:.85em;background:#fff;
border:1px solid #ccc;padding:.3em}.tree ul{list-style:none;padding-left:1em;margin:0}
.tree a.sel{background:#cde;font-weight:bold}.pane{margin-left:37%}
.plot{width:100%;height:460px;background:#fff}.thumb{vertical-align:middle;background:#fff}
figure{display:inline-block;margin:.4em;background:#fff}figure img{max-width:520px}
figcaption{text-align:center;font-size:.85em}code{font-size:.9em}
.controls{margin:.4em 0}.controls input{width:6em}
"""

JS = r"""
"use strict";
const MF = (() => {
  const cfgEl = document.getElementById("mf-config");
  const cfg = cfgEl ? JSON.parse(cfgEl.textContent) : {};
  const q = (o) => new URLSearchParams(o).toString();
  async function getJSON(url) {
    const r = await fetch(url);
    if (!r.ok) throw new Error((await r.text()) || r.statusText);
    return r.json();
  }
  function say(div, text, cls) {
    div.textContent = "";
    const p = document.createElement("p");
    p.className = cls || "muted"; p.textContent = text; div.appendChild(p);
  }
  function stride(n, max) { return Math.max(1, Math.ceil(n / max)); }
  function axisLabel(name, units) {
    return units && units !== "dimensionless" ? `${name} [${units}]` : name;
  }
  // 1D: a curve (strided to <= 20000 points); 2D: heat map (<= 512x512 as values with hover,
  // larger as a PNG image); nD: the last two axes at chosen leading indices.
  async function plotDataset(div, file, path, opts) {
    opts = opts || {};
    const meta = opts.meta || await getJSON("/meta/?" + q({file, path}));
    if (meta.kind !== "dataset") { say(div, "a group: pick a dataset"); return; }
    const shape = meta.shape, units = meta.units || "", name = path.split("/").pop();
    if (meta.dtype === "str") { say(div, "text dataset: see its values above"); return; }
    if (shape.length === 0) {
      const v = await getJSON("/data/?" + q({file, path}));
      say(div, `${name} = ${v} ${units}`, "ok"); return;
    }
    const t0 = performance.now();
    if (shape.length === 1) {
      const s = stride(shape[0], 20000);
      const y = await getJSON("/data/?" + q({file, path, selection: `::${s}`}));
      const x = y.map((_, i) => i * s);
      Plotly.newPlot(div, [{x, y, mode: "lines", name,
        hovertemplate: `%{x}: %{y} ${units}<extra></extra>`}],
        {margin: {t: 30}, title: {text: path}, xaxis: {title: {text: "index"}},
         yaxis: {title: {text: axisLabel(name, units)}}}, {responsive: true});
      div.dataset.ms = (performance.now() - t0).toFixed(1); return;
    }
    let lead = opts.lead || shape.slice(0, -2).map(() => 0);
    const ny = shape[shape.length - 2], nx = shape[shape.length - 1];
    const pre = lead.length ? lead.join(",") + "," : "";
    if (ny * nx <= 512 * 512) {
      const z = await getJSON("/data/?" + q({file, path, selection: pre + ":,:"}));
      Plotly.react(div, [{z, type: "heatmap", colorscale: "Viridis",
        hovertemplate: `x %{x}, y %{y}: %{z} ${units}<extra></extra>`,
        colorbar: {title: {text: units}}}],
        {margin: {t: 30}, title: {text: path + (lead.length ? ` [${lead.join(",")}]` : "")},
         yaxis: {autorange: "reversed"}}, {responsive: true});
    } else {
      const r = await fetch("/image?" + q({file, path, selection: pre}));
      if (!r.ok) throw new Error((await r.text()) || r.statusText);
      const blob = await r.blob();
      const src = await new Promise((ok, bad) => {
        const fr = new FileReader(); fr.onload = () => ok(fr.result);
        fr.onerror = () => bad(new Error("image failed")); fr.readAsDataURL(blob);
      });
      Plotly.react(div, [{type: "image", source: src, hovertemplate: "x %{x}, y %{y}<extra></extra>"}],
        {margin: {t: 30}, title: {text: `${path} [${lead.join(",")}] (${ny}x${nx}, ${units})`}},
        {responsive: true});
    }
    div.dataset.ms = (performance.now() - t0).toFixed(1);
    div.dataset.shown = pre;
  }
  function leadControls(holder, div, file, path, meta) {
    holder.textContent = "";
    const lead = meta.shape.slice(0, -2);
    if (meta.kind !== "dataset" || meta.shape.length < 3) return;
    const inputs = lead.map((n, i) => {
      const lab = document.createElement("label");
      lab.textContent = ` axis ${i} (0..${n - 1}): `;
      const inp = document.createElement("input");
      inp.type = "number"; inp.min = 0; inp.max = n - 1; inp.value = 0; inp.id = `lead-${i}`;
      lab.appendChild(inp); holder.appendChild(lab); return inp;
    });
    const go = () => plotDataset(div, file, path, {meta, lead: inputs.map(i => +i.value)})
      .catch(e => say(div, String(e.message), "bad"));
    inputs.forEach(i => i.addEventListener("change", go));
  }
  async function overlay(div, files, names, path) {
    const traces = [];
    let units = "";
    for (let k = 0; k < files.length; k++) {
      const meta = await getJSON("/meta/?" + q({file: files[k], path}));
      units = meta.units || units;
      const s = stride(meta.shape[0], 20000);
      const y = await getJSON("/data/?" + q({file: files[k], path, selection: `::${s}`}));
      traces.push({x: y.map((_, i) => i * s), y, mode: "lines", name: names[k],
                   hovertemplate: `${names[k].replace(/%/g, "%%")}: %{y} ${units}<extra></extra>`});
    }
    Plotly.newPlot(div, traces, {margin: {t: 30}, title: {text: path},
      yaxis: {title: {text: axisLabel(path.split("/").pop(), units)}}}, {responsive: true});
  }
  function live(dir) {
    const tbody = document.querySelector("#live tbody"), st = document.getElementById("live-status");
    const es = new EventSource("/events?" + q({dir}));
    es.onmessage = (ev) => {
      const s = JSON.parse(ev.data);
      st.textContent = s.status + (s.running ? " (updating)" : "");
      tbody.textContent = "";
      for (const r of s.steps) {
        const tr = document.createElement("tr");
        const b = r.batches_total ? `${r.batches_done}/${r.batches_total}` :
          (r.batches_done ? String(r.batches_done) : "");
        for (const c of [r.id, r.task, r.state, b, r.n_items ?? "", r.duration_s ?? ""]) {
          const td = document.createElement("td"); td.textContent = String(c); tr.appendChild(td);
        }
        tr.className = r.state === "done" ? "ok" : (r.state === "running" ? "run" : "");
        tbody.appendChild(tr);
      }
      if (!s.running) es.close();
    };
  }
  async function start() {
    const plot = document.getElementById("plot");
    if (cfg.page === "tree" && cfg.path && plot) {
      try {
        const meta = await getJSON("/meta/?" + q({file: cfg.file, path: cfg.path}));
        leadControls(document.getElementById("lead"), plot, cfg.file, cfg.path, meta);
        if (meta.kind === "dataset") await plotDataset(plot, cfg.file, cfg.path, {meta});
      } catch (e) { say(plot, String(e.message), "bad"); }
    }
    if (cfg.page === "run") {
      document.querySelectorAll("a.plotlink").forEach(a => a.addEventListener("click", (ev) => {
        ev.preventDefault();
        plotDataset(plot, cfg.file, a.dataset.path).catch(e => say(plot, String(e.message), "bad"));
        plot.scrollIntoView();
      }));
      if (cfg.headline) plotDataset(plot, cfg.file, cfg.headline).catch(e => say(plot, String(e.message), "bad"));
      for (const d of document.querySelectorAll("div.figures")) {
        fetch("/figures?" + q({file: cfg.file, step: d.dataset.step})).then(r => r.text())
          .then(t => { d.innerHTML = t; d.dataset.loaded = "1"; });
      }
    }
    if (cfg.page === "compare" && plot) {
      const sel = document.getElementById("curve");
      const draw = () => overlay(plot, cfg.files, cfg.names, sel.value).catch(e => say(plot, String(e.message), "bad"));
      if (sel && sel.value) { sel.addEventListener("change", draw); draw(); }
    }
    if (cfg.page === "live") live(cfg.dir);
  }
  document.addEventListener("DOMContentLoaded", start);
  return {plotDataset, overlay, cfg};
})();
"""
