// Small hand-written SVG line charts (no library, no build step).
// Charts.line(figure, {times, series: [{key, label, values}], unit, minSpanMs}) draws into
// the <figure>: an <svg role="img"> whose aria-label sums up the latest values, and a legend.
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";
  const PAD = { left: 58, right: 12, top: 10, bottom: 22 };

  function svgEl(name, attrs) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  function si(value, unit) {
    if (value === null || value === undefined || !isFinite(value)) return "–";
    const abs = Math.abs(value);
    const steps = [[1e9, "G"], [1e6, "M"], [1e3, "k"]];
    if (unit === "ms") return value.toFixed(abs < 10 ? 2 : 1) + " ms";
    for (const [k, p] of steps) if (abs >= k) return (value / k).toFixed(2) + " " + p + unit;
    return value.toFixed(abs < 10 ? 1 : 0) + " " + unit;
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  function clock(ms) {
    const d = new Date(ms);
    const two = (n) => String(n).padStart(2, "0");
    return two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds());
  }

  function line(figure, opts) {
    const times = opts.times || [];
    const unit = opts.unit || "";
    const series = (opts.series || []).filter((s) => s.values.some((v) => v !== null));
    let svg = figure.querySelector("svg");
    if (!svg) {
      svg = svgEl("svg", { role: "img", focusable: "false" });
      figure.appendChild(svg);
    }
    const width = Math.max(240, Math.round(svg.getBoundingClientRect().width || 600));
    const height = Math.max(120, Math.round(svg.getBoundingClientRect().height || 180));
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const end = times.length ? times[times.length - 1] : Date.now();
    // the data's own span (a fresh node fills the width), at least `minSpanMs`
    const first = times.length ? times[0] : end;
    const start = Math.min(first, end - (opts.minSpanMs || 30000));
    const span = Math.max(1, end - start);
    let top = 0;
    for (const s of series) for (const v of s.values) if (v !== null && v > top) top = v;
    top = niceMax(top * 1.05);
    const plotW = width - PAD.left - PAD.right;
    const plotH = height - PAD.top - PAD.bottom;
    const x = (t) => PAD.left + ((t - start) / span) * plotW;
    const y = (v) => PAD.top + plotH - (v / top) * plotH;
    for (let i = 0; i <= 4; i++) {
      const v = (top * i) / 4;
      svg.appendChild(svgEl("line", { class: "gridline", x1: PAD.left, x2: width - PAD.right, y1: y(v), y2: y(v) }));
      const label = svgEl("text", { class: "axis", x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end" });
      label.textContent = si(v, unit);
      svg.appendChild(label);
    }
    const ticks = Math.max(1, Math.min(5, Math.floor(plotW / 110)));
    for (let i = 0; i <= ticks; i++) {
      const t = start + (span * i) / ticks;
      const anchor = i === 0 ? "start" : i === ticks ? "end" : "middle";
      const label = svgEl("text", { class: "axis", x: x(t), y: height - 6, "text-anchor": anchor });
      label.textContent = clock(t);
      svg.appendChild(label);
    }
    const summary = [];
    series.forEach((s, i) => {
      let d = "";
      let pen = false;
      s.values.forEach((v, j) => {
        if (v === null || v === undefined) { pen = false; return; }
        d += (pen ? "L" : "M") + x(times[j]).toFixed(1) + " " + y(v).toFixed(1);
        pen = true;
      });
      const last = [...s.values].reverse().find((v) => v !== null);
      const cls = "c" + (s.color !== undefined ? s.color : i) % 8;
      const path = svgEl("path", { class: "line " + cls, d: d, "data-series": s.key, "data-points": s.values.filter((v) => v !== null).length });
      svg.appendChild(path);
      if (s.values.filter((v) => v !== null).length === 1) {
        const j = s.values.findIndex((v) => v !== null);
        svg.appendChild(svgEl("circle", { class: "line " + cls, cx: x(times[j]), cy: y(s.values[j]), r: 2.5 }));
      }
      summary.push({ key: s.key, label: s.label, last: last, cls: cls });
    });
    if (!series.length) {
      const empty = svgEl("text", { class: "empty", x: width / 2, y: height / 2, "text-anchor": "middle" });
      empty.textContent = opts.empty || "no data yet";
      svg.appendChild(empty);
    }
    const title = opts.title || "chart";
    const spoken = summary.map((s) => `${s.label} ${si(s.last, unit)}`).join(", ");
    svg.setAttribute("aria-label", `${title}: ${spoken || opts.empty || "no data yet"}`);
    let legend = figure.querySelector("ul.legend");
    if (!legend) {
      legend = document.createElement("ul");
      legend.className = "legend";
      figure.appendChild(legend);
    }
    legend.replaceChildren(...summary.map((s) => {
      const li = document.createElement("li");
      li.dataset.series = s.key;
      li.dataset.latest = s.last === undefined ? "" : String(s.last);
      const sw = document.createElement("span");
      sw.className = "swatch " + s.cls;
      sw.setAttribute("aria-hidden", "true");
      li.append(sw, document.createTextNode(`${s.label}: ${si(s.last, unit)}`));
      return li;
    }));
  }

  window.Charts = { line: line, si: si, clock: clock };
})();
