// convlayer web page: plain JS, no build step, nothing loaded from other sites.
// The server does the numbers (model, preprocessing, convolution trace); this file only draws.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { info: null, tab: "draw", requestId: 0, trace: null, step: 0, timer: null, kernel: null, seed: 1,
  request: null, predict: false, asking: false };  // asking: the current cell waits for the learner's value

// ------------------------------------------------------------------ helpers

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (e) { /* not JSON: reported below */ }
  if (!response.ok) {
    throw new Error((body && body.error) || `${path}: HTTP ${response.status}`);
  }
  return body;
}

function fmt(value) {
  if (Number.isInteger(value)) return String(value);
  const text = value.toFixed(2);
  return text === "-0.00" ? "0.00" : text;
}

// Dark blue -> teal -> yellow, close to viridis, for activations scaled to [0, 1].
const STOPS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function colour(t) {
  t = Math.min(1, Math.max(0, t)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(t)), f = t - i;
  return STOPS[i].map((c, k) => Math.round(c + f * (STOPS[i + 1][k] - c)));
}

// ------------------------------------------------------------------ tabs

function selectTab(name) {
  state.tab = name;
  for (const button of document.querySelectorAll(".tab")) {
    const active = button.dataset.tab === name;
    button.classList.toggle("active", active);
    button.setAttribute("aria-selected", String(active));
  }
  for (const panel of document.querySelectorAll("section.panel")) panel.hidden = panel.id !== `tab-${name}`;
  $("results").hidden = true;
  showError("");
  stopPlaying();
  if (name === "conv" && !state.trace) runTrace();
}

// ------------------------------------------------------------------ drawing

const pad = $("pad");
const pen = pad.getContext("2d");
let drawing = false, last = null, inked = false;

function clearPad() {
  pen.fillStyle = "#fff";
  pen.fillRect(0, 0, pad.width, pad.height);
  inked = false;
  $("results").hidden = true;
  showError("");
}

function padPoint(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width, (event.clientY - box.top) * pad.height / box.height];
}

function strokeTo(point) {
  pen.strokeStyle = "#000";
  pen.fillStyle = "#000";
  pen.lineWidth = Number($("pen").value);
  pen.lineCap = "round";
  pen.lineJoin = "round";
  pen.beginPath();
  if (last) {
    pen.moveTo(last[0], last[1]);
    pen.lineTo(point[0], point[1]);
    pen.stroke();
  } else {
    pen.arc(point[0], point[1], pen.lineWidth / 2, 0, 2 * Math.PI);
    pen.fill();
  }
  last = point;
  inked = true;
}

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  drawing = true;
  last = null;
  strokeTo(padPoint(event));
});
pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of events.length ? events : [event]) strokeTo(padPoint(e));
});
function endStroke() {
  if (!drawing) return;
  drawing = false;
  last = null;
  if (inked) predictDrawing();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);
$("clear").addEventListener("click", clearPad);

function predictDrawing() {
  const id = ++state.requestId;
  pad.toBlob(async (blob) => {
    const form = new FormData();
    form.append("image", blob, "drawing.png");
    try {
      const result = await api("/api/predict", { method: "POST", body: form });
      if (id === state.requestId && state.tab === "draw") showResult(result);
    } catch (error) {
      if (id === state.requestId) { $("results").hidden = true; showError(error.message); }
    }
  }, "image/png");
}

// ------------------------------------------------------------------ results: top 3, input, feature maps

function showResult(result, label) {
  showError("");
  const list = $("top3");
  list.replaceChildren();
  for (const entry of result.top) {
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.className = "name" + (label !== undefined && entry.index === label ? " correct" : "");
    name.textContent = entry.name;
    const pct = document.createElement("span");
    pct.textContent = ` ${(entry.probability * 100).toFixed(1)}%`;
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = `${Math.max(1, entry.probability * 200)}px`;
    item.append(name, pct, bar);
    list.append(item);
  }
  const rows = result.input.length, cols = result.input[0].length;
  $("input-shape").textContent = `${rows}×${cols}`;
  const methods = { "as-is": "taken as it is (already the model's size)", "fill": "prepared like Fashion-MNIST " +
    "(the object fills the frame)", "digits-8x8": "prepared like the 8x8 digits (17 grey levels)",
    "mnist-digit": "prepared like MNIST (20×20 box, centred by mass)" };
  $("input-method").textContent = result.preprocess ? `Preprocessing: ${methods[result.preprocess]}.` : "";
  $("input-note").textContent = result.note ? `Note: ${result.note}.` : "";
  $("input-note").hidden = !result.note;
  paintImage($("input-view"), result.input, 1);
  const maps = $("maps");
  maps.replaceChildren();
  for (const fmap of result.maps) maps.append(featureMapGrid(fmap));
  $("results").hidden = false;
}

function paintImage(canvas, image, scale) {
  const rows = image.length, cols = image[0].length;
  canvas.width = cols;
  canvas.height = rows;
  const pixels = canvas.getContext("2d").createImageData(cols, rows);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const v = Math.round(255 * Math.min(1, Math.max(0, image[r][c] / scale)));
      pixels.data.set([v, v, v, 255], 4 * (r * cols + c));
    }
  }
  canvas.getContext("2d").putImageData(pixels, 0, 0);
}

// One small image per channel, each scaled by its own maximum, in a grid of 8 columns.
function featureMapGrid(fmap) {
  const [height, width, channels] = fmap.shape;
  const columns = 8, rowsOfMaps = Math.ceil(channels / columns);
  const gridW = columns * (width + 1) + 1, gridH = rowsOfMaps * (height + 1) + 1;
  const box = document.createElement("div");
  box.className = "map";
  box.dataset.name = fmap.name;
  const title = document.createElement("h2");
  title.textContent = `${fmap.name} feature maps `;
  const note = document.createElement("small");
  note.textContent = `${height}×${width}×${channels}, after ReLU, each map scaled to its own maximum`;
  title.append(note);
  const canvas = document.createElement("canvas");
  canvas.className = "pixels";
  canvas.width = gridW;
  canvas.height = gridH;
  const scale = Math.max(1, Math.floor(480 / gridW));
  canvas.style.width = `${gridW * scale}px`;
  canvas.style.height = `${gridH * scale}px`;
  const context = canvas.getContext("2d");
  const pixels = context.createImageData(gridW, gridH);
  pixels.data.fill(255);  // white gaps between maps
  for (let ch = 0; ch < channels; ch++) {
    const top = 1 + Math.floor(ch / columns) * (height + 1), left = 1 + (ch % columns) * (width + 1);
    const peak = fmap.channel_max[ch] > 0 ? fmap.channel_max[ch] : 1;
    for (let r = 0; r < height; r++) {
      for (let c = 0; c < width; c++) {
        const [red, green, blue] = colour(fmap.data[ch][r][c] / peak);
        pixels.data.set([red, green, blue, 255], 4 * ((top + r) * gridW + left + c));
      }
    }
  }
  context.putImageData(pixels, 0, 0);
  canvas.title = "click a map to open its filter's card";
  canvas.addEventListener("click", (event) => {  // which map was clicked: grid cell under the pointer
    const x = Math.floor(event.offsetX / scale) - 1, y = Math.floor(event.offsetY / scale) - 1;
    const ch = Math.floor(y / (height + 1)) * columns + Math.floor(x / (width + 1));
    if (x >= 0 && y >= 0 && ch < channels && typeof openFilterCard === "function") openFilterCard(fmap.name, ch);
  });
  box.append(title, canvas);
  return box;
}

// ------------------------------------------------------------------ gallery

async function showGallery(query) {
  const id = ++state.requestId;
  $("gallery-status").textContent = "loading…";
  try {
    const result = await api(`/api/gallery?${query}`);
    if (id !== state.requestId || state.tab !== "gallery") return;
    $("g-index").value = result.index;
    const verdict = result.top[0].index === result.label ? "correct" : "wrong";
    $("gallery-status").textContent =
      `${result.dataset} test image #${result.index} of ${result.count}` +
      (result.seed === null ? "" : ` (random, seed ${result.seed})`) +
      `: true class ${result.label_name}; predicted ${result.top[0].name} (${verdict}).`;
    showResult(result, result.label);
  } catch (error) {
    if (id !== state.requestId) return;
    $("gallery-status").textContent = "";
    $("results").hidden = true;
    showError(error.message);
  }
}

$("gallery-form").addEventListener("submit", (event) => {
  event.preventDefault();
  showGallery(`index=${encodeURIComponent($("g-index").value || "0")}`);
});
$("g-random").addEventListener("click", () => {
  const seed = Number($("g-seed").value || 0);
  showGallery(`seed=${encodeURIComponent(seed)}`);
  $("g-seed").value = seed + 1;  // the next click shows another image; the shown seed reproduces this one
});

// ------------------------------------------------------------------ convolution panel

// A small seeded generator (mulberry32) so "New input" is reproducible from its seed.
function generator(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function intSetting(id) {
  const input = $(id);
  const value = Math.round(Number(input.value));
  const low = Number(input.min), high = Number(input.max);
  const clamped = Number.isFinite(value) ? Math.min(high, Math.max(low, value)) : low;
  input.value = clamped;
  return clamped;
}

function presetKernel(name, size) {
  const random = generator(state.seed * 7919);
  const middle = (size - 1) / 2;
  return Array.from({ length: size }, (_, r) => Array.from({ length: size }, (_, c) => {
    if (name === "ones") return 1;
    if (name === "identity") return r === Math.floor(middle) && c === Math.floor(middle) ? 1 : 0;
    if (name === "random") return Math.floor(random() * 5) - 2;
    return c < middle ? -1 : c > middle ? 1 : 0;  // vertical edge
  }));
}

function convInput(size) {
  const random = generator(state.seed);
  return Array.from({ length: size }, () => Array.from({ length: size }, () => Math.floor(random() * 10)));
}

async function runTrace() {
  stopPlaying();
  const size = intSetting("c-size"), k = intSetting("c-k");
  if (!state.kernel || state.kernel.length !== k) state.kernel = presetKernel($("c-preset").value, k);
  const request = {
    input: convInput(size), kernel: state.kernel, bias: Number($("c-bias").value) || 0,
    strides: intSetting("c-stride"), padding: $("c-pad").value, dilation: intSetting("c-dil"),
  };
  const id = ++state.requestId;
  try {
    const trace = await api("/api/trace", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request),
    });
    if (id !== state.requestId) return;
    showError("");
    state.trace = trace;
    state.request = request;
    state.step = 0;
    state.asking = false;
    showVerdict(null);
    renderTrace();
  } catch (error) {
    if (id !== state.requestId) return;
    state.trace = null;
    for (const t of ["c-input", "c-output"]) $(t).replaceChildren();
    for (const t of ["c-input-shape", "c-output-shape"]) $(t).textContent = "";  // no stale sizes
    $("c-step").textContent = "";
    $("c-notes").replaceChildren();
    $("c-pos").textContent = "";
    state.asking = false;
    $("c-predict").hidden = true;
    showVerdict(null);
    renderKernel();
    showError(error.message);
  }
}

function renderKernel() {
  const table = $("c-kernel");
  table.replaceChildren();
  const step = state.trace && state.trace.steps[state.step];
  state.kernel.forEach((row, r) => {
    const tr = table.insertRow();
    row.forEach((value, c) => {
      const cell = tr.insertCell();
      const input = document.createElement("input");
      input.value = value;
      input.inputMode = "decimal";
      input.setAttribute("aria-label", `kernel row ${r} column ${c}`);
      input.addEventListener("change", () => {
        const number = Number(input.value);
        if (!Number.isFinite(number)) { input.value = state.kernel[r][c]; return; }
        state.kernel[r][c] = number;
        runTrace();
      });
      cell.append(input);
      if (step && !state.asking) cell.title = `× ${fmt(step.window[r][c][0])} = ${fmt(step.products[r][c][0])}`;
    });
  });
}

function renderTrace() {
  const trace = state.trace, step = trace.steps[state.step];
  const [[padTop], [padLeft]] = trace.padding;
  const rows = trace.input.length, cols = trace.input[0].length;
  const inWindow = new Set();
  for (const r of step.rows) for (const c of step.cols) inWindow.add(`${r},${c}`);

  const input = $("c-input");
  input.replaceChildren();
  trace.padded.forEach((row, r) => {
    const tr = input.insertRow();
    row.forEach((value, c) => {
      const cell = tr.insertCell();
      cell.textContent = fmt(value[0]);
      const padded = r < padTop || r >= padTop + rows || c < padLeft || c >= padLeft + cols;
      if (padded) cell.classList.add("pad");
      if (inWindow.has(`${r},${c}`)) cell.classList.add("win");
    });
  });
  $("c-input-shape").textContent = `${trace.padded.length}×${trace.padded[0].length} ` +
    `(input ${rows}×${cols}, padding ${trace.padding_name})`;

  const output = $("c-output");
  output.replaceChildren();
  const outCols = trace.output[0].length;
  trace.output.forEach((row, r) => {
    const tr = output.insertRow();
    row.forEach((value, c) => {
      const cell = tr.insertCell();
      const index = r * outCols + c;
      const hidden = index > state.step || (index === state.step && state.asking);
      cell.textContent = hidden ? (index === state.step ? "?" : "") : fmt(value);
      if (index < state.step) cell.classList.add("done");
      if (index === state.step) cell.classList.add(state.asking ? "ask" : "now");
    });
  });
  $("c-output-shape").textContent = `${trace.output.length}×${outCols}`;
  renderKernel();

  const terms = [];
  step.window.forEach((row, i) => row.forEach((value, j) => {
    terms.push(`${fmt(value[0])}×${fmt(trace.kernel[i][j][0])}`);
  }));
  const where = `output[${step.out_row}, ${step.out_col}]: kernel rows ${step.rows.join(",")} × columns ` +
    `${step.cols.join(",")} of the padded input`;
  $("c-step").textContent = state.asking ? `${where}\n= ? (your prediction)` :
    `${where}\n= ${terms.join(" + ")} + bias ${fmt(trace.bias)}\n= ${fmt(step.total)}`;
  $("c-predict").hidden = !state.asking;
  $("c-guess-label").textContent = `Your value for output[${step.out_row}, ${step.out_col}]`;
  $("c-pos").textContent = `step ${state.step + 1} of ${trace.steps.length}`;
  const notes = $("c-notes");
  notes.replaceChildren();
  for (const line of [...trace.formulas, ...trace.padding_reason]) {
    const item = document.createElement("li");
    item.textContent = line;
    notes.append(item);
  }
}

function moveStep(delta) {
  if (!state.trace) return;
  const count = state.trace.steps.length;
  state.step = (state.step + delta + count) % count;
  state.asking = state.predict && delta > 0;  // only a new cell ahead is asked; going back shows known ones
  showVerdict(null);
  renderTrace();
  if (state.asking) { $("c-guess").value = ""; $("c-guess").focus(); }
}

// ------------------------------------------------------------------ predict the next cell

function showVerdict(verdict) {
  const box = $("c-verdict");
  box.replaceChildren();
  box.hidden = !verdict;
  if (!verdict) return;
  box.className = verdict.correct ? "right" : "wrong";
  const head = document.createElement("p");
  const [row, col] = verdict.cell;
  head.textContent = verdict.correct ? `✓ ${fmt(verdict.value)} is right.` :
    `✗ Yours: ${fmt(verdict.value)}; output[${row}, ${col}] is ${fmt(verdict.expected)}.`;
  box.append(head);
  if (verdict.mistakes.length) {
    const list = document.createElement("ul");
    for (const mistake of verdict.mistakes) {
      const item = document.createElement("li");
      const name = document.createElement("strong");
      name.textContent = mistake.name;
      const rule = document.createElement("span");
      rule.className = "rule";
      rule.textContent = `Rule: ${mistake.rule}`;
      item.append(name, `: ${mistake.says}.`, rule);
      list.append(item);
    }
    box.append(list);
  }
  if (verdict.mistakes.length) return;  // the hint would repeat what the list says
  const hint = document.createElement("p");
  hint.textContent = verdict.hint;
  box.append(hint);
}

async function checkPrediction() {
  const text = $("c-guess").value.trim().replace("\u2212", "-");  // a typographic minus counts too
  const value = Number(text);
  if (!text || !Number.isFinite(value)) {
    showVerdict(null);
    showError(`"${text}" is not a number: type the cell's value, e.g. 12 or -3.5.`);
    $("c-guess").focus();
    return;
  }
  const trace = state.trace, step = trace.steps[state.step];
  const body = { ...state.request, cell: [step.out_row, step.out_col], value };
  try {
    const verdict = await api("/api/predict-cell", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (trace !== state.trace || step !== trace.steps[state.step] || !state.asking) return;  // moved on meanwhile
    showError("");
    state.asking = false;
    renderTrace();
    showVerdict(verdict);
    $("c-next").focus();  // Enter again steps to the next cell
  } catch (error) {
    showError(error.message);
  }
}

function stopPlaying() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
  $("c-play").textContent = "Play";
}

$("c-next").addEventListener("click", () => { stopPlaying(); moveStep(1); });
$("c-prev").addEventListener("click", () => { stopPlaying(); moveStep(-1); });
$("c-play").addEventListener("click", () => {
  if (state.timer) { stopPlaying(); return; }
  if (!state.trace) return;
  $("c-play").textContent = "Pause";
  state.timer = setInterval(() => moveStep(1), 700);
});
$("c-predict-on").addEventListener("change", () => {
  stopPlaying();
  state.predict = $("c-predict-on").checked;
  $("c-play").disabled = state.predict;  // playing would reveal the cells it should ask for
  if (!state.predict && state.asking) { state.asking = false; renderTrace(); }
});
$("c-predict").addEventListener("submit", (event) => { event.preventDefault(); checkPrediction(); });
$("c-new").addEventListener("click", () => { state.seed += 1; runTrace(); });
$("c-preset").addEventListener("change", () => { state.kernel = null; runTrace(); });
for (const id of ["c-size", "c-k", "c-stride", "c-pad", "c-dil", "c-bias"]) {
  $(id).addEventListener("change", runTrace);
}
$("conv-form").addEventListener("submit", (event) => { event.preventDefault(); runTrace(); });

// ------------------------------------------------------------------ start

for (const button of document.querySelectorAll(".tab")) {
  button.addEventListener("click", () => selectTab(button.dataset.tab));
}
clearPad();
api("/api/info").then((info) => {
  state.info = info;
  if (info.train) document.querySelector(".tab[data-tab=train]").hidden = false;
  const dataset = info.dataset || "unknown dataset";
  $("model-info").textContent =
    `${dataset} checkpoint · ${info.input_dim}×${info.input_dim} input · ${info.num_classes} classes`;
}).catch((error) => showError(error.message));
