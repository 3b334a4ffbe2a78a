// The Train tab (`convlayer serve --train`): start a training, watch it stream, steer it, fork it.
// The server trains; this file draws what it sends (app.js provides $, api and showError).
"use strict";

const train = { runs: {}, current: null, source: null, paused: false, shown: null };
const RUN_COLOURS = ["#1f6feb", "#d1242f", "#1a7f37", "#8250df", "#bc4c00"];

function trainSettings() {
  const number = (id) => Number($(id).value);
  const settings = { dataset: $("t-dataset").value, epochs: number("t-epochs"), batch_size: number("t-batch"),
                     learning_rate: number("t-lr"), seed: number("t-seed") };
  if ($("t-limit").value) settings.limit = number("t-limit");
  return settings;
}

function setRunning(running) {
  for (const id of ["t-pause", "t-stop", "t-set-lr"]) $(id).disabled = !running;
  $("t-start").disabled = running;
  if (!running) { train.paused = false; $("t-pause").textContent = "Pause"; }
}

async function post(path, body) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

function follow(summary) {
  const run = { id: summary.id, parent: summary.parent, progress: [], snapshots: [] };
  train.runs[run.id] = run;
  train.current = run.id;
  setRunning(true);
  if (train.source) train.source.close();
  const source = new EventSource(`/api/train/events?run=${run.id}`);
  train.source = source;
  source.onmessage = (message) => onEvent(run, JSON.parse(message.data));
  source.addEventListener("end", () => { source.close(); setRunning(false); });
}

function onEvent(run, event) {
  const status = $("t-status");
  if (event.type === "progress") {
    run.progress.push(event);
    status.textContent = `run ${run.id} · epoch ${event.epoch} · step ${event.step} · loss ` +
      `${event.loss.toFixed(4)} · accuracy ${(event.accuracy * 100).toFixed(1)}% · rate ${event.learning_rate}`;
    drawChart();
  } else if (event.type === "snapshot") {
    run.snapshots.push(event);
    if (run.id === train.current) showSnapshot(run, run.snapshots.length - 1);
  } else if (event.type === "paused" || event.type === "resumed") {
    train.paused = event.type === "paused";
    $("t-pause").textContent = train.paused ? "Resume" : "Pause";
    status.textContent = `run ${run.id} ${event.type} at step ${event.step}`;
  } else if (event.type === "learning_rate") {
    status.textContent = `run ${run.id}: learning rate ${event.value} from step ${event.step}`;
  } else if (event.type === "done") {
    status.textContent = `run ${run.id} done: test accuracy ${(event.test_accuracy * 100).toFixed(2)}% ` +
      `(best epoch ${event.best_epoch})`;
  } else if (event.type === "stopped") {
    status.textContent = `run ${run.id} stopped`;
  } else if (event.type === "error") {
    showError(event.message);
  }
}

function drawChart() {
  const canvas = $("t-chart"), context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  const runs = Object.values(train.runs).filter((run) => run.progress.length);
  if (!runs.length) return;
  const lastStep = Math.max(...runs.map((run) => run.progress[run.progress.length - 1].step));
  const maxLoss = Math.max(...runs.flatMap((run) => run.progress.map((p) => p.loss)));
  const x = (step) => 30 + (canvas.width - 40) * step / Math.max(1, lastStep);
  const y = (value, top) => canvas.height - 20 - (canvas.height - 30) * value / top;
  context.strokeStyle = "#888";
  context.strokeRect(30, 10, canvas.width - 40, canvas.height - 30);
  context.fillStyle = "#555";
  context.fillText(`step ${lastStep}`, canvas.width - 60, canvas.height - 5);
  context.fillText(maxLoss.toFixed(2), 0, 16);
  for (const run of runs) {
    context.strokeStyle = RUN_COLOURS[(run.id - 1) % RUN_COLOURS.length];
    for (const [key, top, dash] of [["loss", maxLoss, []], ["accuracy", 1, [4, 3]]]) {
      context.setLineDash(dash);
      context.beginPath();
      run.progress.forEach((p, i) => (i ? context.lineTo : context.moveTo).call(context, x(p.step), y(p[key], top)));
      context.stroke();
    }
    context.setLineDash([]);
  }
}

// A grid of small images (8 per row), each scaled to its own range; 'signed' maps -max..max to blue..red.
function paintGrid(canvas, images, zoom, signed) {
  const count = images.length, height = images[0].length, width = images[0][0].length, columns = 8;
  const rows = Math.ceil(count / columns);
  canvas.width = columns * (width + 1) + 1;
  canvas.height = rows * (height + 1) + 1;
  canvas.style.width = `${canvas.width * zoom}px`;
  const context = canvas.getContext("2d"), pixels = context.createImageData(canvas.width, canvas.height);
  images.forEach((image, index) => {
    const flat = image.flat(), top = Math.max(1e-9, ...flat.map(Math.abs));
    const left = 1 + (index % columns) * (width + 1), up = 1 + Math.floor(index / columns) * (height + 1);
    image.forEach((row, r) => row.forEach((value, c) => {
      const v = value / top, at = 4 * ((up + r) * canvas.width + left + c);
      const rgb = signed ? (v >= 0 ? [255, 255 * (1 - v), 255 * (1 - v)] : [255 * (1 + v), 255 * (1 + v), 255])
                         : [255 * Math.max(0, v), 255 * Math.max(0, v), 255 * Math.max(0, v)];
      pixels.data.set([...rgb.map(Math.round), 255], at);
    }));
  });
  context.putImageData(pixels, 0, 0);
}

function showSnapshot(run, index) {
  const snapshot = run.snapshots[index];
  train.shown = { run: run.id, epoch: snapshot.epoch };
  const slider = $("t-epoch");
  slider.max = String(run.snapshots.length - 1);
  slider.value = String(index);
  $("t-epoch-label").textContent = `run ${run.id}, epoch ${snapshot.epoch}` +
    (snapshot.val_accuracy == null ? "" : ` · validation ${(snapshot.val_accuracy * 100).toFixed(1)}%`);
  paintGrid($("t-filters"), snapshot.filters, 6, true);
  paintGrid($("t-maps"), snapshot.maps, snapshot.maps[0].length < 16 ? 4 : 2, false);
  $("t-fork").disabled = false;
}

$("t-epoch").addEventListener("input", () => {
  const run = train.runs[train.current];
  if (run && run.snapshots.length) showSnapshot(run, Number($("t-epoch").value));
});

$("t-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  try { follow(await post("/api/train/start", trainSettings())); } catch (error) { showError(error.message); }
});

$("t-pause").addEventListener("click", () =>
  post("/api/train/control", { action: train.paused ? "resume" : "pause" }).catch((e) => showError(e.message)));
$("t-stop").addEventListener("click", () =>
  post("/api/train/control", { action: "stop" }).catch((e) => showError(e.message)));
$("t-set-lr").addEventListener("click", () =>
  post("/api/train/control", { action: "learning_rate", value: Number($("t-new-lr").value) })
    .catch((e) => showError(e.message)));
$("t-fork").addEventListener("click", async () => {
  if (!train.shown) return;
  showError("");
  try {
    follow(await post("/api/train/fork", { run: train.shown.run, epoch: train.shown.epoch,
                                           learning_rate: Number($("t-new-lr").value) }));
  } catch (error) { showError(error.message); }
});

api("/api/info").then(async (info) => {
  if (!info.train) return;
  const state = await api("/api/train/state");
  $("t-dataset").replaceChildren(...state.datasets.map((name) => new Option(name, name)));
  $("t-dataset").value = info.dataset && state.datasets.includes(info.dataset) ? info.dataset : "digits";
}).catch((error) => showError(error.message));
