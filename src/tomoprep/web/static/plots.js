// The plots of a run's tilt series: fills <section id="plots" data-run data-kinds data-series> from
// /api/runs/RUN/series/NAME/plots with charts drawn by chart.js. Points against the tilt angle are joined in tilt
// order; excluded (or CTF-flagged) tilts are hollow; clicking a CTF point draws that tilt's fitted spectrum.
"use strict";

const BLUE = "#1f77b4", RED = "#d62728", GREEN = "#2ca02c", GREY = "#888";

function element(tag, text, className) {
  const made = document.createElement(tag);
  if (text) made.textContent = text;
  if (className) made.className = className;
  return made;
}

const deg = v => { const r = Math.abs(v) < 0.05 ? 0 : v; return `${r > 0 ? "+" : ""}${r.toFixed(1)}°`; };
function tiltTip(t, lines) {
  const state = t.excluded ? `excluded: ${t.reason || "no reason recorded"}` : "";
  return [`tilt ${deg(t.tilt_deg)}, acquisition #${t.acquisition_index}`, ...lines, state].filter(Boolean).join("\n");
}

// Viridis-like colours from dark blue (first acquired) to yellow (last).
function orderColour(fraction) {
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const at = fraction * (stops.length - 1), k = Math.min(Math.floor(at), stops.length - 2), f = at - k;
  return `rgb(${stops[k].map((c, i) => Math.round(c + f * (stops[k + 1][i] - c))).join(",")})`;
}

function motionPlots(box, data, facts) {
  const tilts = data.tilts, n = Math.max(tilts.length - 1, 1);
  const trajectories = tilts.filter(t => t.trajectory_angstrom).map(t => ({
    colour: orderColour(t.acquisition_index / n), line: "given",
    points: t.trajectory_angstrom.map(([x, y], frame) => ({
      x, y, r: 2, hollow: t.excluded, hidden: frame === 0,  // every path starts at the origin
      tip: tiltTip(t, [`frame group ${frame + 1}: x ${x.toFixed(1)} Å, y ${y.toFixed(1)} Å`])})),
  }));
  facts.textContent = "Trajectories: the motion of each movie's content from its first frame group, in Å; colour " +
    "from dark (first acquired) to yellow (last). Excluded tilts are hollow.";
  drawChart(box, {title: "Trajectories", equal: true,
                  x: {label: "x shift from the first frame (Å)"}, y: {label: "y shift (Å)"}, series: trajectories});
  const parts = t => (t.early_motion_angstrom === null ? ""
    : ` (early ${t.early_motion_angstrom.toFixed(1)}, late ${t.late_motion_angstrom.toFixed(1)})`);
  const total = tilts.map(t => ({x: t.tilt_deg, y: t.total_motion_angstrom, hollow: t.excluded, skipLine: t.excluded,
    tip: tiltTip(t, [`total motion ${t.total_motion_angstrom?.toFixed(1)} Å${parts(t)}`])}));
  drawChart(box, {title: "Total motion per tilt", x: {label: "tilt angle (°)"}, y: {label: "accumulated motion (Å)"},
                  series: [{colour: BLUE, line: "x", points: total}]});
}

function alignmentFacts(data) {
  const turn = data.refined_axis_deg - data.nominal_axis_deg;
  const thickness = data.thickness_status === "measured" ? `${data.thickness_angstrom.toFixed(0)} Å`
    : `none: ${data.thickness_reason}`;
  return `Tilt axis: nominal ${data.nominal_axis_deg.toFixed(2)}°, refined ${data.refined_axis_deg.toFixed(2)}° ` +
    `(${turn >= 0 ? "+" : ""}${turn.toFixed(2)}°). Thickness: ${thickness}.` +
    (data.axis_scores ? "" : " (No axis search in this run: the axis was kept, or read from files.)");
}

// Each tilt's correlation with the reprojection of the others in the last projection-matching pass.
function matchPlot(box, aligned) {
  const matched = aligned.filter(t => t.match_score !== null);
  if (!matched.length) return;
  const points = matched.map(t => ({x: t.tilt_deg, y: t.match_score, hollow: t.excluded, tip: tiltTip(t,
    [`match score ${t.match_score.toFixed(3)}`, `last correction ${t.match_correction_angstrom.toFixed(2)} Å`])}));
  drawChart(box, {title: "Projection matching: score per tilt", x: {label: "tilt angle (°)"},
                  y: {label: "match score (correlation)"},
                  series: [{colour: BLUE, line: "x", points}]});
}

const SEARCHES = {common_lines: "Axis search: common lines", cross_prediction: "Axis search: cross-prediction (final)"};

// A search's score against the axis angle tried, the angle it chose marked (common lines: their best, which the
// alignment takes only where it believes them; the log notes say).
function axisPlot(box, search) {
  const points = search.angles_deg.map((a, i) => ({x: a, y: search.scores[i], r: 2.5,
    tip: `axis ${a.toFixed(2)}°: score ${search.scores[i]?.toFixed(4)}`}));
  drawChart(box, {title: SEARCHES[search.method] || search.method, className: "axis-search",
                  x: {label: "tilt-axis angle (°)"},
                  y: {label: "score"}, marks: [{x: search.chosen_deg,
                    label: `${search.method === "common_lines" ? "best" : "chosen"} ${search.chosen_deg.toFixed(2)}°`}],
                  series: [{colour: GREEN, line: "x", points}]});
}

function alignmentPlots(box, data, facts) {
  facts.textContent = alignmentFacts(data);
  if (data.axis_notes.length) {
    const list = facts.appendChild(element("ul", "", "muted"));
    for (const note of data.axis_notes) list.appendChild(element("li", note));
  }
  const aligned = data.tilts.filter(t => t.aligned);
  const shift = (key, axis) => aligned.map(t => ({x: t.tilt_deg, y: t[key], hollow: t.excluded,
    tip: tiltTip(t, [`${axis} shift ${t[key].toFixed(1)} Å`, `refined tilt ${deg(t.y_tilt_deg)}`])}));
  drawChart(box, {title: "Shifts per tilt", x: {label: "tilt angle (°)"}, y: {label: "shift (Å)"},
                  series: [{name: "x", colour: BLUE, line: "x", points: shift("shift_x_angstrom", "x")},
                           {name: "y", colour: RED, line: "x", points: shift("shift_y_angstrom", "y")}]});
  const correction = aligned.map(t => ({x: t.tilt_deg, y: t.y_tilt_deg - t.tilt_deg, hollow: t.excluded,
    tip: tiltTip(t, [`refined tilt ${deg(t.y_tilt_deg)} (${(t.y_tilt_deg - t.tilt_deg).toFixed(2)}°)`])}));
  drawChart(box, {title: "Tilt-angle correction", x: {label: "nominal tilt angle (°)"},
                  y: {label: "refined − nominal tilt (°)"},
                  series: [{colour: GREEN, line: "x", points: correction}]});
  matchPlot(box, aligned);
  const local = aligned.filter(t => t.local_shift_rms_angstrom !== null);
  if (local.length) {
    drawChart(box, {title: "Patch tracking: local shifts", x: {label: "tilt angle (°)"},
      y: {label: "local shift RMS (Å)"},
      series: [{colour: BLUE, line: "x", points: local.map(t => ({x: t.tilt_deg, y: t.local_shift_rms_angstrom,
        hollow: t.excluded, tip: tiltTip(t, [`local shifts ${t.local_shift_rms_angstrom.toFixed(1)} Å RMS`])}))}]});
  }
  for (const search of data.axis_scores || []) axisPlot(box, search);
}

function ctfTip(t) {
  const resolution = t.fit_resolution_angstrom === null ? "no fit resolution"
    : `fit to ${t.fit_resolution_angstrom.toFixed(1)} Å`;
  const um = angstrom => (angstrom / 1e4).toFixed(3);
  const uv = `U ${um(t.defocus_u_angstrom)}, V ${um(t.defocus_v_angstrom)}`;
  return tiltTip(t, [`defocus ${t.defocus_um.toFixed(3)} µm (${uv})`,
                     resolution, t.flag ? `flagged: ${t.flag} (values from the series)` : ""]);
}

function spectrumPlot(holder, run, name, tilt) {
  fetch(`/api/runs/${encodeURIComponent(run)}/series/${encodeURIComponent(name)}/ctf/${tilt.acquisition_index}`,
        {credentials: "same-origin"}).then(answer => answer.json().then(data => {
    holder.replaceChildren();
    if (!answer.ok) { holder.appendChild(element("p", data.detail, "muted")); return; }
    const k = data.frequency_per_angstrom, at = i => `${(1 / k[i]).toFixed(1)} Å`;
    const curve = (values, label) => k.map((f, i) => ({x: f, y: values[i], r: 1.2,
      tip: tiltTip(data, [`${label} at ${f.toFixed(4)} 1/Å (${at(i)}): ${values[i].toFixed(2)}`])}));
    const title = `Spectrum of tilt ${deg(data.tilt_deg)} (#${data.acquisition_index}), ` +
      `${data.defocus_um.toFixed(3)} µm`;
    drawChart(holder, {title,
      width: 520, x: {label: "spatial frequency (1/Å), astigmatism-corrected rings"},
      y: {label: "log power, background removed (SD)"},
      series: [{name: "data", colour: BLUE, line: "given", points: curve(data.data, "data")},
               {name: "model", colour: RED, line: "given", points: curve(data.model, "model")}]});
  }));
}

function ctfPlots(box, data, facts, run) {
  const span = data.defocus_span_um, pad = 0.05;
  facts.textContent = `Defocus plots span ±${((span[1] - span[0]) / 2).toFixed(1)} µm around the median ` +
    `${data.median_defocus_um.toFixed(2)} µm; tilts beyond it sit on the edge as triangles. Hand: ` +
    (data.hand === null ? "undetermined" : `${data.hand > 0 ? "+" : ""}${data.hand}`) +
    (data.hand_confidence === null ? "" : ` (confidence ${data.hand_confidence.toFixed(1)})`) +
    ". Click a point for its spectrum.";
  const flagged = data.tilts.filter(t => t.flag);
  if (flagged.length) {
    facts.textContent += ` Tilts without a fit of their own (hollow; not in the resolution plot): ` +
      flagged.map(t => `${deg(t.tilt_deg)} (${t.flag})`).join(", ") + ".";
  }
  const spectrum = element("div", "", "plot-spectrum");
  const choose = point => {  // the tilt is marked in every chart, its spectrum drawn below them
    for (const dot of box.querySelectorAll(".point.chosen")) dot.classList.remove("chosen");
    const same = box.querySelectorAll(`.point[data-tilt="${point.tilt.acquisition_index}"]`);
    for (const dot of same) dot.classList.add("chosen");
    spectrumPlot(spectrum, run, data.name, point.tilt);
  };
  const points = (x, y) => data.tilts.map(t => ({x: x(t), y: y(t), hollow: Boolean(t.flag) || t.excluded, tilt: t,
                                                 tip: ctfTip(t)}));
  const byTilt = points(t => t.tilt_deg, t => t.defocus_um);
  const byOrder = points(t => t.acquisition_index, t => t.defocus_um);
  const defocus = {label: "defocus (µm underfocus)", range: [span[0] - pad, span[1] + pad], clip: true};
  drawChart(box, {title: "Defocus against tilt", x: {label: "tilt angle (°)"}, y: defocus, onClick: choose,
                  series: [{colour: BLUE, lineColour: GREY, line: "x", points: byTilt}]});
  drawChart(box, {title: "Defocus in acquisition order", x: {label: "acquisition index"}, y: defocus, onClick: choose,
                  series: [{colour: BLUE, lineColour: GREY, line: "x", points: byOrder}]});
  const fitted = points(t => t.tilt_deg, t => t.flag ? null : t.fit_resolution_angstrom);
  drawChart(box, {title: "Fit resolution (finer up)", x: {label: "tilt angle (°)"},
                  y: {label: "fit resolution (Å)", reversed: true},
                  onClick: choose, series: [{colour: BLUE, line: "x", points: fitted}]});
  box.appendChild(spectrum);
  const own = data.tilts.filter(t => t.has_spectrum && !t.flag);
  const start = (own.length ? own : data.tilts.filter(t => t.has_spectrum))
    .sort((a, b) => Math.abs(a.tilt_deg) - Math.abs(b.tilt_deg))[0];
  if (start) choose({tilt: start});
  else spectrum.appendChild(element("p", "No power spectra in this run (estimates read from a file).", "muted"));
}

const DRAW = {motion: motionPlots, alignment: alignmentPlots, ctf: ctfPlots};
const HEADINGS = {motion: "Motion correction", alignment: "Alignment", ctf: "CTF"};

async function seriesPlots(section, run, name, kinds) {
  const holder = element("div", "", "series-plots");  // in the order of the series, whichever answer comes first
  holder.dataset.series = name;
  holder.appendChild(element("h3", name));
  section.appendChild(holder);
  const answer = await fetch(`/api/runs/${encodeURIComponent(run)}/series/${encodeURIComponent(name)}/plots`,
                             {credentials: "same-origin"});
  const data = await answer.json();
  if (!answer.ok) { holder.appendChild(element("p", data.detail, "ERROR")); return; }
  for (const kind of kinds.filter(k => data[k])) {
    const part = element("div", "", `kind-${kind}`);
    part.appendChild(element("h4", HEADINGS[kind]));
    const facts = part.appendChild(element("p", "", "facts"));
    const box = part.appendChild(element("div", "", "plots"));
    DRAW[kind](box, data[kind], facts, run);
    holder.appendChild(part);
  }
  if (!kinds.some(k => data[k])) holder.appendChild(element("p", "Nothing to plot for this series yet.", "muted"));
}

(function () {
  const section = document.getElementById("plots");
  if (!section) return;
  const kinds = section.dataset.kinds.split(" ");
  for (const name of JSON.parse(section.dataset.series)) seriesPlots(section, section.dataset.run, name, kinds);
})();
