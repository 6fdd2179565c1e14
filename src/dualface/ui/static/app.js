// dualface studio: posts the forms to the JSON API and polls /api/state to show what changed.
// Each part of the page is rebuilt only when its data changed, so a playing video or a half-typed form
// survives the polling.
"use strict";

const POLL_MS = 750;
const rendered = {}; // part -> JSON of the data it was last built from
let logJob = null;

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) el.setAttribute(key, value);
  }
  el.append(...children.filter((c) => c !== null && c !== undefined));
  return el;
}

function changed(part, data) {
  const key = JSON.stringify(data);
  if (rendered[part] === key) return false;
  rendered[part] = key;
  return true;
}

function say(text, isError = false) {
  const box = document.getElementById("message");
  box.textContent = text;
  box.className = isError ? "error" : "info";
}

// Every change goes through here: the X-Dualface header is what the server requires of a POST.
async function post(url, body) {
  const options = { method: "POST", headers: { "X-Dualface": "1" } };
  if (body instanceof FormData) options.body = body;
  else {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body || {});
  }
  const response = await fetch(url, options);
  const data = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
  if (!response.ok) throw new Error(data.error || response.statusText);
  poll();
  return data;
}

function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

function onSubmit(id, action) {
  document.getElementById(id).addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      say(await action(event.target));
    } catch (error) {
      say(error.message, true);
    }
  });
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  const s = Math.round(seconds);
  return `${Math.floor(s / 3600)}:${String(Math.floor(s / 60) % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

function megabytes(bytes) {
  return `${(bytes / 2 ** 20).toFixed(1)} MB`;
}

// --- the parts of the page ---------------------------------------------------------------------------

function renderNames(names) {
  for (const el of document.querySelectorAll(".name")) el.textContent = names[el.dataset.slot];
  const before = rendered.names ? JSON.parse(rendered.names) : { a: "", b: "" };
  if (changed("names", names)) {
    for (const slot of ["a", "b"]) {
      // Never over what the user has typed: a poll that lands late (a busy CPU) would undo it.
      const input = document.getElementById(`name-${slot}`);
      if (input.value === before[slot]) input.value = names[slot];
    }
  }
}

function renderFootage(footage) {
  for (const slot of ["a", "b"]) {
    if (!changed(`footage-${slot}`, footage[slot])) continue;
    const items = footage[slot].map((f) =>
      h("li", {}, h("a", { href: `/files/${f.path}/${encodeURIComponent(f.name)}`, target: "_blank" }, f.name),
        ` ${f.kind}, ${megabytes(f.bytes)}`));
    document.getElementById(`footage-${slot}`).replaceChildren(...items);
  }
  const videos = ["a", "b"].flatMap((slot) =>
    footage[slot].filter((f) => f.kind === "video").map((f) => ({ value: `${slot}/${f.name}`, slot, name: f.name })));
  if (changed("convert-video", videos)) {
    const select = document.getElementById("convert-video");
    const keep = select.value;
    select.replaceChildren(...videos.map((v) => h("option", { value: v.value }, `${v.slot.toUpperCase()}: ${v.name}`)));
    if (videos.some((v) => v.value === keep)) select.value = keep;
  }
}

function renderFaces(faces) {
  for (const slot of ["a", "b"]) {
    document.getElementById(`faces-count-${slot}`).textContent = faces[slot].count;
    if (!changed(`faces-${slot}`, faces[slot].names)) continue;
    const tiles = faces[slot].names.map((name) =>
      h("div", { class: "tile" },
        h("img", { src: `/files/faces/${slot}/${encodeURIComponent(name)}`, alt: name, title: name, loading: "lazy" }),
        h("button", { class: "drop", type: "button", title: `drop ${name}`, "data-name": name }, "\u00d7")));
    if (faces[slot].count > faces[slot].names.length) {
      tiles.push(h("p", { class: "muted" }, `showing ${faces[slot].names.length} of ${faces[slot].count}`));
    }
    document.getElementById(`faces-${slot}`).replaceChildren(...tiles);
  }
}

function setImage(id, url) {
  const img = document.getElementById(id);
  if (url && img.getAttribute("src") !== url) img.src = url;
  img.hidden = !url;
}

function renderTraining(t) {
  document.getElementById("train-step").textContent = t.step;
  document.getElementById("train-target").textContent = t.target ? ` / ${t.target}` : "";
  document.getElementById("train-egs").textContent = t.egs_per_s !== undefined ? t.egs_per_s.toFixed(1) : "-";
  document.getElementById("train-eta").textContent = t.running ? duration(t.eta_s) : "-";
  document.getElementById("train-losses").textContent = t.losses
    ? Object.entries(t.losses).map(([name, value]) => `${name} ${value.toFixed(4)}`).join(", ")
    : "-";
  document.getElementById("train-stop").disabled = !t.running;
  document.getElementById("train-stop").dataset.job = t.job || "";
  document.getElementById("train-start").disabled = t.running;
  setImage("preview", t.preview);
  setImage("loss-png", t.loss_png);
  if (changed("loss-chart", t.series || null)) drawLoss(t.series);
}

function drawLoss(series) {
  const svg = document.getElementById("loss-chart");
  svg.replaceChildren();
  if (!series || series.steps.length < 2) return;
  const names = Object.keys(series).filter((k) => k !== "steps");
  const values = names.flatMap((n) => series[n]);
  const [low, high] = [Math.min(...values), Math.max(...values)];
  const [first, last] = [series.steps[0], series.steps[series.steps.length - 1]];
  const x = (step) => ((step - first) / Math.max(1, last - first)) * 390 + 5;
  const y = (v) => 195 - ((v - low) / Math.max(1e-9, high - low)) * 185;
  const ns = "http://www.w3.org/2000/svg";
  names.forEach((name, i) => {
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", series.steps.map((s, j) => `${x(s)},${y(series[name][j])}`).join(" "));
    line.setAttribute("class", `series-${i}`);
    svg.append(line);
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", 10 + i * 90);
    label.setAttribute("y", 16);
    label.setAttribute("class", `series-${i}`);
    label.textContent = name;
    svg.append(label);
  });
}

function renderConversions(conversions) {
  const media = conversions.slice(0, 5).map((c) => [c.job, c.label, c.output, c.original]);
  if (changed("conversions", media)) {
    document.getElementById("conversions").replaceChildren(...conversions.slice(0, 5).map((c) =>
      h("div", { class: "conversion" },
        h("h3", {}, c.label),
        h("div", { class: "pair" },
          h("figure", {}, c.original ? h("video", { class: "original", src: c.original, controls: "", preload: "auto" }) : "no browser copy of the original",
            h("figcaption", {}, "original")),
          h("figure", {}, h("video", { class: "swap", src: c.output, controls: "", preload: "auto" }),
            h("figcaption", {}, "swap (", h("a", { href: c.output, download: "" }, "download"), ")"))))));
  }
  const options = conversions.map((c) => [c.job, c.label]);
  if (changed("evaluate-conversion", options)) {
    const select = document.getElementById("evaluate-conversion");
    select.replaceChildren(...options.map(([job, label]) => h("option", { value: job }, label)));
  }
  const reports = conversions.filter((c) => c.report).map((c) => [c.label, c.report]);
  if (changed("reports", reports)) {
    document.getElementById("reports").replaceChildren(...reports.map(([label, url]) =>
      h("li", {}, h("a", { href: url, target: "_blank", class: "report" }, `report: ${label}`))));
  }
}

function renderJobs(jobs) {
  if (changed("jobs", jobs)) {
    document.querySelector("#jobs-table tbody").replaceChildren(...jobs.map((j) =>
      h("tr", { "data-kind": j.kind, "data-status": j.status, "data-job": j.id },
        h("td", { title: j.id }, j.label),
        h("td", { class: `status ${j.status}` }, j.status),
        h("td", { class: "progress" }, j.progress),
        h("td", {},
          h("button", { type: "button", class: "show-log", "data-job": j.id }, "log"),
          j.status === "running" ? h("button", { type: "button", class: "cancel", "data-job": j.id }, "cancel") : null))));
  }
}

async function renderLog() {
  if (!logJob) return;
  const response = await fetch(`/api/jobs/${logJob}/log`);
  const pre = document.getElementById("log");
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.textContent = response.ok ? await response.text() : `(no log: ${response.status})`;
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}

let polling = false;
async function poll() {
  if (polling) return;
  polling = true;
  try {
    const response = await fetch("/api/state");
    if (!response.ok) throw new Error(`state: ${response.status}`);
    const s = await response.json();
    renderNames(s.names);
    renderFootage(s.footage);
    renderFaces(s.faces);
    renderTraining(s.training);
    renderConversions(s.conversions);
    renderJobs(s.jobs);
    await renderLog();
  } catch (error) {
    say(`cannot reach the server: ${error.message}`, true);
  } finally {
    polling = false;
  }
}

// --- actions ----------------------------------------------------------------------------------------

onSubmit("names-form", async (form) => {
  const { names } = await post("/api/names", formValues(form));
  return `names: A is ${names.a}, B is ${names.b}`;
});

for (const form of document.querySelectorAll("form.upload")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = form.querySelector("input[type=file]");
    if (!input.files.length) return say("choose files to upload first", true);
    say(`uploading ${input.files.length} file(s)...`);
    try {
      const { stored } = await post(`/api/upload/${form.dataset.slot}`, new FormData(form));
      input.value = "";
      say(`uploaded ${stored.join(", ")}`);
    } catch (error) {
      say(error.message, true);
    }
  });
}

onSubmit("extract-form", async (form) => {
  // A checkbox is sent as true or false (a form sends "on", or nothing).
  const { jobs } = await post("/api/extract", { ...formValues(form), overwrite: form.elements.overwrite.checked });
  return `started ${jobs.join(", ")}`;
});

onSubmit("train-form", async (form) => `started ${(await post("/api/train", formValues(form))).job}`);
onSubmit("convert-form", async (form) => `started ${(await post("/api/convert", formValues(form))).job}`);
onSubmit("evaluate-form", async (form) => `started ${(await post("/api/evaluate", formValues(form))).job}`);

async function cancel(job) {
  try {
    await post(`/api/jobs/${job}/cancel`);
    say(`cancelling ${job}`);
  } catch (error) {
    say(error.message, true);
  }
}

document.getElementById("train-stop").addEventListener("click", (event) => cancel(event.target.dataset.job));

document.getElementById("jobs-table").addEventListener("click", (event) => {
  const job = event.target.dataset.job;
  if (event.target.classList.contains("cancel")) cancel(job);
  if (event.target.classList.contains("show-log")) {
    logJob = job;
    document.getElementById("log-title").textContent = `log of ${job}`;
    document.getElementById("log-title").hidden = document.getElementById("log").hidden = false;
    renderLog();
  }
});

for (const slot of ["a", "b"]) {
  document.getElementById(`faces-${slot}`).addEventListener("click", async (event) => {
    if (!event.target.classList.contains("drop")) return;
    const name = event.target.dataset.name;
    try {
      await post(`/api/faces/${slot}/${encodeURIComponent(name)}/drop`);
      event.target.closest(".tile").remove();
      say(`dropped ${name}`);
    } catch (error) {
      say(error.message, true);
    }
  });
}

poll();
setInterval(poll, POLL_MS);
