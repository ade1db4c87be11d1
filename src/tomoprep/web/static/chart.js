// A small SVG chart: axes with labels, units and ticks, series of points (hollow where excluded) and lines, a
// tooltip on hover, clicks on points. Values beyond fixed y limits are drawn on the edge as triangles pointing
// out, their tooltip giving the value. Used by plots.js; no library, nothing from a network.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const MARGIN = {left: 62, right: 14, top: 40, bottom: 42};

function svgElement(name, attributes, parent) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (parent) parent.appendChild(element);
  return element;
}

// Ticks at 1, 2 or 5 times a power of ten, about `count` of them between low and high.
function niceTicks(low, high, count) {
  const raw = (high - low) / Math.max(count, 1);
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const steps = [1, 2, 5, 10].map(f => f * power);
  const miss = s => Math.abs((high - low) / s - count);
  const step = steps.reduce((best, s) => (miss(s) < miss(best) ? s : best));
  const ticks = [];
  for (let t = Math.ceil(low / step) * step; t <= high + step * 1e-9; t += step) ticks.push(t);
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return {ticks, label: t => (Math.abs(t) < step * 1e-9 ? 0 : t).toFixed(decimals)};
}

function extent(values, given) {
  let [low, high] = given || [Math.min(...values), Math.max(...values)];
  if (!isFinite(low) || !isFinite(high)) [low, high] = [0, 1];
  if (high - low < 1e-12) [low, high] = [low - 0.5 * (Math.abs(low) || 1), high + 0.5 * (Math.abs(high) || 1)];
  if (!given) { const pad = 0.06 * (high - low); [low, high] = [low - pad, high + pad]; }
  return [low, high];
}

// Equal units per pixel along x and y (a trajectory must not look stretched): widen the narrower range.
function equalise(xRange, yRange, width, height) {
  const scale = Math.max((xRange[1] - xRange[0]) / width, (yRange[1] - yRange[0]) / height);
  const widen = (r, pixels) => {
    const mid = (r[0] + r[1]) / 2;
    return [mid - scale * pixels / 2, mid + scale * pixels / 2];
  };
  return [widen(xRange, width), widen(yRange, height)];
}

function drawAxes(svg, x, y, spec, inner) {
  const g = svgElement("g", {class: "axes"}, svg);
  svgElement("rect", {x: MARGIN.left, y: MARGIN.top, width: inner.width, height: inner.height,
                      fill: "none", stroke: "#999"}, g);
  const bottom = MARGIN.top + inner.height;
  const xt = niceTicks(x.low, x.high, Math.max(3, Math.round(inner.width / 70)));
  for (const t of xt.ticks) {
    svgElement("line", {x1: x(t), x2: x(t), y1: bottom, y2: bottom + 4, stroke: "#555"}, g);
    svgElement("text", {x: x(t), y: bottom + 16, "text-anchor": "middle"}, g).textContent = xt.label(t);
  }
  const yt = niceTicks(y.low, y.high, Math.max(3, Math.round(inner.height / 45)));
  for (const t of yt.ticks) {
    svgElement("line", {x1: MARGIN.left - 4, x2: MARGIN.left, y1: y(t), y2: y(t), stroke: "#555"}, g);
    svgElement("line", {x1: MARGIN.left, x2: MARGIN.left + inner.width, y1: y(t), y2: y(t), stroke: "#eee"}, g);
    svgElement("text", {x: MARGIN.left - 7, y: y(t) + 4, "text-anchor": "end"}, g).textContent = yt.label(t);
  }
  svgElement("text", {x: MARGIN.left + inner.width / 2, y: bottom + 34, "text-anchor": "middle"}, g)
    .textContent = spec.x.label;
  const middle = MARGIN.top + inner.height / 2;
  svgElement("text", {x: 14, y: middle, "text-anchor": "middle", transform: `rotate(-90 14 ${middle})`}, g)
    .textContent = spec.y.label;
  svgElement("text", {x: MARGIN.left, y: 14, class: "title"}, g).textContent = spec.title;
}

function drawLegend(svg, series, left) {
  let at = left;
  for (const s of series.filter(s => s.name)) {
    svgElement("circle", {cx: at + 5, cy: 28, r: 4, fill: s.colour}, svg);
    const text = svgElement("text", {x: at + 13, y: 32}, svg);
    text.textContent = s.name;
    at += 22 + 6.2 * s.name.length;
  }
}

function marker(g, px, py, point, colour, edge) {
  const hollow = point.hollow;
  const style = {fill: hollow ? "#fff" : colour, stroke: hollow ? "#888" : colour, "stroke-width": hollow ? 1.5 : 1,
                 class: "point"};
  if (edge) {  // beyond the y limits: a triangle on the edge, pointing the way the value lies
    const d = edge > 0 ? -1 : 1;
    return svgElement("path", {...style, fill: "#fff", stroke: "#d2691e", "stroke-width": 1.5,
                               d: `M${px - 5},${py - 4 * d} L${px + 5},${py - 4 * d} L${px},${py + 5 * d} Z`}, g);
  }
  return svgElement("circle", {...style, cx: px, cy: py, r: point.r || 3.5}, g);
}

// A vertical line at x (a chosen value) with its label just above the plotting area, where no point can hide it
// (the legend's row: a chart with marks names no series).
function drawMark(svg, x, mark, inner) {
  const at = x(mark.x), colour = mark.colour || "#d62728";
  svgElement("line", {x1: at, x2: at, y1: MARGIN.top - 3, y2: MARGIN.top + inner.height, stroke: colour,
                      "stroke-width": 1.2, "stroke-dasharray": "4 3", class: "mark"}, svg);
  const anchor = at > MARGIN.left + inner.width * 0.7 ? "end" : at < MARGIN.left + inner.width * 0.3 ? "start"
    : "middle";
  svgElement("text", {x: at, y: MARGIN.top - 6, fill: colour, "text-anchor": anchor, class: "mark-label"}, svg)
    .textContent = mark.label;
}

// spec: {title, width, height, x: {label, range?}, y: {label, range?, reversed?, clip?}, equal?, onClick?(point),
//        marks?: [{x, label, colour?}] (vertical lines), className? (of the chart's box, beside "plot"),
//        series: [{name?, colour, line?: "x" | "given" | false,
//                  points: [{x, y, tip, hollow?, skipLine?, hidden?, r?, tilt?: {acquisition_index}}]}]}
function drawChart(container, spec) {
  const width = spec.width || 380, height = spec.height || 270;
  const inner = {width: width - MARGIN.left - MARGIN.right, height: height - MARGIN.top - MARGIN.bottom};
  const all = spec.series.flatMap(s => s.points).filter(p => p.y !== null && p.x !== null);
  const marks = spec.marks || [];
  let xRange = extent([...all.map(p => p.x), ...marks.map(m => m.x)], spec.x.range), yRange = extent(all.map(p => p.y), spec.y.range);
  if (spec.equal) [xRange, yRange] = equalise(xRange, yRange, inner.width, inner.height);
  const x = v => MARGIN.left + (v - xRange[0]) / (xRange[1] - xRange[0]) * inner.width;
  const yUp = v => MARGIN.top + (yRange[1] - v) / (yRange[1] - yRange[0]) * inner.height;
  const y = spec.y.reversed ? v => 2 * MARGIN.top + inner.height - yUp(v) : yUp;
  [x.low, x.high, y.low, y.high] = [xRange[0], xRange[1], yRange[0], yRange[1]];
  const box = document.createElement("div");
  box.className = spec.className ? `plot ${spec.className}` : "plot";
  const svg = svgElement("svg", {width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
                                 "aria-label": spec.title});
  box.appendChild(svg);
  const tooltip = document.createElement("div");
  tooltip.className = "tooltip";
  tooltip.hidden = true;
  box.appendChild(tooltip);
  drawAxes(svg, x, y, spec, inner);
  drawLegend(svg, spec.series, MARGIN.left);
  for (const mark of marks) drawMark(svg, x, mark, inner);
  const clipped = v => Math.min(Math.max(v, yRange[0]), yRange[1]);
  for (const s of spec.series) {
    const points = s.points.filter(p => p.y !== null && p.x !== null);
    const joined = points.filter(p => !p.skipLine);
    if (s.line && joined.length > 1) {
      const ordered = s.line === "x" ? [...joined].sort((a, b) => a.x - b.x) : joined;
      const at = p => `${x(p.x).toFixed(1)},${y(clipped(p.y)).toFixed(1)}`;
      const path = ordered.map((p, k) => `${k ? "L" : "M"}${at(p)}`).join(" ");
      svgElement("path", {d: path, fill: "none", stroke: s.lineColour || s.colour, "stroke-width": 1.2,
                          opacity: 0.8}, svg);
    }
    const g = svgElement("g", {}, svg);
    for (const p of points.filter(p => !p.hidden)) {  // a hidden point only bends the line
      const edge = spec.y.clip ? (p.y > yRange[1] ? 1 : p.y < yRange[0] ? -1 : 0) : 0;
      const dot = marker(g, x(p.x), y(clipped(p.y)), p, s.colour, edge);
      if (p.tilt) dot.dataset.tilt = p.tilt.acquisition_index;
      const tip = edge ? `${p.tip}\n(beyond the plotted span)` : p.tip;
      dot.addEventListener("mouseenter", () => {
        tooltip.textContent = tip;
        tooltip.hidden = false;
        const right = x(p.x) > width * 0.6;
        tooltip.style.left = right ? "" : `${x(p.x) + 10}px`;
        tooltip.style.right = right ? `${width - x(p.x) + 10}px` : "";
        tooltip.style.top = `${Math.max(0, y(clipped(p.y)) - 10)}px`;
      });
      dot.addEventListener("mouseleave", () => { tooltip.hidden = true; });
      if (spec.onClick) dot.addEventListener("click", () => spec.onClick(p, dot));
    }
  }
  container.appendChild(box);
  return box;
}

window.drawChart = drawChart;
