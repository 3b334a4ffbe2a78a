// The Filters tab: what each filter of conv1/conv2 learned (GET /api/cards, the numbers of `convlayer show cards`).
// Clicking a feature map in Draw or Gallery calls openFilterCard(layer, filter). app.js provides $, api, colour,
// paintImage, selectTab and showError.
"use strict";

const filterTab = { layer: null, overview: {}, selected: null, requestId: 0 };

// Red for positive, blue for negative weights, white for zero (as `convlayer show filters`).
function weightColour(value, limit) {
  const t = Math.max(-1, Math.min(1, value / (limit || 1)));
  const fade = (c) => Math.round(255 - Math.abs(t) * (255 - c));
  return t >= 0 ? [255, fade(40), fade(40)] : [fade(40), fade(90), 255];
}

function kernelCanvas(matrix, limit, size) {
  const rows = matrix.length, cols = matrix[0].length;
  const canvas = document.createElement("canvas");
  canvas.className = "pixels kernel";
  canvas.width = cols;
  canvas.height = rows;
  canvas.style.width = `${size}px`;
  canvas.style.height = `${Math.round(size * rows / cols)}px`;
  const context = canvas.getContext("2d");
  const pixels = context.createImageData(cols, rows);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) pixels.data.set([...weightColour(matrix[r][c], limit), 255], 4 * (r * cols + c));
  }
  context.putImageData(pixels, 0, 0);
  return canvas;
}

// An image with its receptive field outlined: drawn at `scale` pixels per pixel so the outline is crisp.
function patchCanvas(image, box, low, high, scale) {
  const rows = image.length, cols = image[0].length;
  const small = document.createElement("canvas");
  paintImage(small, image.map((row) => row.map((v) => (v - low))), high - low || 1);
  const canvas = document.createElement("canvas");
  canvas.className = "patch";
  canvas.width = cols * scale;
  canvas.height = rows * scale;
  const context = canvas.getContext("2d");
  context.imageSmoothingEnabled = false;
  context.drawImage(small, 0, 0, canvas.width, canvas.height);
  const [top, left, bottom, right] = box;
  context.strokeStyle = "#ff3b1f";
  context.lineWidth = 2;
  context.strokeRect(left * scale + 1, top * scale + 1, (right - left) * scale - 2, (bottom - top) * scale - 2);
  return canvas;
}

async function loadLayer(layer) {
  if (!filterTab.overview[layer]) {
    $("f-status").textContent = "one pass over the test set…";
    filterTab.overview[layer] = await api(`/api/cards?layer=${encodeURIComponent(layer)}`);
  }
  const overview = filterTab.overview[layer];
  filterTab.layer = layer;
  const select = $("f-layer");
  if (!select.options.length) {
    for (const name of overview.layers) select.add(new Option(name, name));
  }
  select.value = layer;
  const size = overview.receptive_field.size;
  $("f-status").textContent = `${overview.filters.length} filters of ${layer}, ${overview.images} test images; ` +
    `each unit sees ${size[0]}×${size[1]} pixels. Click a kernel for its card.`;
  const grid = $("f-grid");
  grid.replaceChildren();
  for (const entry of overview.filters) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "f-thumb";
    button.dataset.filter = entry.index;
    button.title = `filter ${entry.index}` + (entry.kernel_channels.length > 1 ?
      ` (input channel ${entry.kernel_channels[0]}, its largest weights)` : "");
    button.append(kernelCanvas(entry.kernel[0], overview.kernel_limit, 36));
    const label = document.createElement("span");
    label.textContent = entry.index;
    button.append(label);
    button.addEventListener("click", () => showCard(layer, entry.index));
    grid.append(button);
  }
  return overview;
}

async function showCard(layer, index) {
  const id = ++filterTab.requestId;
  $("f-card").hidden = true;
  try {
    await loadLayer(layer);
    const card = await api(`/api/cards?layer=${encodeURIComponent(layer)}&filter=${index}`);
    if (id !== filterTab.requestId) return;
    renderCard(card);
    showError("");
  } catch (error) {
    if (id === filterTab.requestId) { $("f-status").textContent = ""; showError(error.message); }
  }
}

function renderCard(card) {
  const entry = card.filter;
  filterTab.selected = [card.layer, entry.index];
  for (const thumb of document.querySelectorAll(".f-thumb")) {
    thumb.classList.toggle("selected", Number(thumb.dataset.filter) === entry.index);
  }
  $("f-title").textContent = `${card.layer} filter ${entry.index}`;
  const kernels = $("f-kernel");
  kernels.replaceChildren();
  entry.kernel.forEach((matrix, i) => {
    const figure = document.createElement("figure");
    figure.append(kernelCanvas(matrix, card.kernel_limit, 84));
    const caption = document.createElement("figcaption");
    caption.textContent = entry.kernel.length > 1 ? `input channel ${entry.kernel_channels[i]}` : "kernel";
    figure.append(caption);
    kernels.append(figure);
  });
  const [low, high] = card.value_range;
  const optimized = $("f-optimized");
  paintImage(optimized, card.optimized.map((row) => row.map((v) => v - low)), high - low || 1);
  const [before, after] = card.optimized_activation;
  $("f-optimized-note").textContent = `mean activation ${before.toFixed(3)} from the seeded start, ` +
    `${after.toFixed(3)} after gradient ascent`;
  const patches = $("f-patches");
  patches.replaceChildren();
  const side = card.patches.length ? card.patches[0].length : 1;
  const scale = Math.max(2, Math.floor(84 / side));
  entry.top.forEach((top, i) => {
    const figure = document.createElement("figure");
    figure.append(patchCanvas(card.patches[i], top.box, low, high, scale));
    const caption = document.createElement("figcaption");
    caption.textContent = `#${top.image} (${top.row}, ${top.col}) ${top.activation.toFixed(2)}`;
    figure.append(caption);
    patches.append(figure);
  });
  const bars = $("f-classes");
  bars.replaceChildren();
  const peak = Math.max(1e-9, ...entry.class_mean.map((v) => v || 0));
  entry.class_mean.forEach((value, c) => {
    const row = document.createElement("div");
    row.className = "f-bar";
    const name = document.createElement("span");
    name.textContent = card.class_names[c];
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = `${Math.max(1, 160 * (value || 0) / peak)}px`;
    const number = document.createElement("small");
    number.textContent = value === null ? "no images" : value.toFixed(3);
    row.append(name, bar, number);
    bars.append(row);
  });
  $("f-card").hidden = false;
}

// Called by app.js when a feature map is clicked.
function openFilterCard(layer, index) {
  selectTab("filters");
  showCard(layer, index);
}

$("f-layer").addEventListener("change", () => {
  $("f-card").hidden = true;
  loadLayer($("f-layer").value).catch((error) => showError(error.message));
});
document.querySelector(".tab[data-tab=filters]").addEventListener("click", () => {
  if (filterTab.selected) return;
  const first = (state.info && state.info.conv_layers && state.info.conv_layers[0]) || "conv1";
  showCard(first, 0);
});
