// lora-scripts web UI: one page, five tabs, talking to /api (see ui/server.py). No build step, no CDN.
"use strict";
const S = {lang: localStorage.getItem("lang") || document.documentElement.dataset.lang || "", msg: {},
  dataset: localStorage.getItem("dataset") || "", trainJob: "", fields: [], presets: [], loras: [],
  jobs: [], datasetJobs: {}, editing: false};
const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids) if (kid) node.append(kid);
  return node;
};
function t(key, fields = {}) {
  const text = S.msg[key];
  if (text === undefined) return key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in fields ? fields[name] : m));
}
async function api(path, opts = {}) {
  const headers = {"X-Lang": S.lang, ...(opts.json ? {"Content-Type": "application/json"} : {})};
  const res = await fetch(path, {method: opts.method || (opts.json || opts.form ? "POST" : "GET"), headers,
    body: opts.json ? JSON.stringify(opts.json) : opts.form});
  let data = {};
  try { data = await res.json(); } catch (e) { data = {error: t("ui.server_error")}; }
  if (!res.ok) throw new Error(data.error || t("ui.server_error"));
  return data;
}
function say(text, kind = "error") {
  const box = $("#message");
  box.textContent = text; box.className = kind; box.hidden = !text;
  if (kind !== "error") setTimeout(() => { if (box.textContent === text) box.hidden = true; }, 4000);
}
const guard = (fn) => async (...args) => { try { await fn(...args); } catch (e) { say(e.message); } };

// ---------------- language ----------------
async function loadLang(lang) {
  const data = await api("/api/i18n" + (lang ? "?lang=" + lang : ""));
  S.lang = data.lang; S.msg = data.messages; localStorage.setItem("lang", S.lang);
  document.documentElement.lang = S.lang === "zh" ? "zh-CN" : "en";
  $("#lang").value = S.lang;
  document.querySelectorAll("[data-t]").forEach((n) => { n.textContent = t(n.dataset.t); });
  document.querySelectorAll("[data-tp]").forEach((n) => { n.placeholder = t(n.dataset.tp); });
  document.title = t("ui.title");
}
// ---------------- tabs ----------------
function showTab(name) {
  document.querySelectorAll(".page").forEach((p) => { p.hidden = p.id !== "page-" + name; });
  document.querySelectorAll(".tab").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  localStorage.setItem("tab", name);
  if (name === "generate") refreshGenerate();
  if (name === "library") refreshLibrary();
  if (name === "batch") refreshBatch();
}
// ---------------- dataset ----------------
async function refreshWorkspace() {
  const ws = await api("/api/workspace");
  const sel = $("#dataset-select"), keep = S.dataset;
  sel.replaceChildren(el("option", {value: "", text: t("dataset.none")}),
    ...ws.datasets.map((d) => el("option", {value: d, text: d.replace(/^datasets\//, "")})));
  if (keep && !ws.datasets.includes(keep)) sel.append(el("option", {value: keep, text: keep}));
  sel.value = keep;
  const model = $("#gen-model"), was = model.value;
  model.replaceChildren(...ws.models.map((m) => el("option", {value: m, text: m.replace(/^models\//, "")})));
  if (ws.models.includes(was)) model.value = was;
  const vae = $("#gen-vae"), vaeWas = vae.value;
  vae.replaceChildren(el("option", {value: "", text: t("gen.vae_base")}),
    ...ws.vaes.map((v) => el("option", {value: v, text: v.replace(/^models\/VAE\//, "")})));
  if (ws.vaes.includes(vaeWas)) vae.value = vaeWas;
  return ws;
}
async function openDataset(path) {
  S.dataset = path; localStorage.setItem("dataset", path);
  await refreshWorkspace();
  await renderDataset();
}
async function renderDataset() {
  const box = $("#thumbs");
  if (!S.dataset) { box.replaceChildren(el("p", {text: t("dataset.pick_first")})); $("#findings").replaceChildren(); return; }
  const data = await api("/api/dataset?path=" + encodeURIComponent(S.dataset));
  const flags = {};
  for (const f of data.findings) for (const img of f.images) (flags[img] = flags[img] || []).push(f);
  $("#findings").replaceChildren(...data.findings.map((f) =>
    el("li", {class: "finding " + f.level}, el("b", {text: t("level." + f.level) + " · " + f.title + ": "}), f.message)));
  const report = $("#doctor-report");
  report.hidden = !data.findings.length; report.href = "/files/" + data.dataset + "/doctor_report.html";
  if (data.problem) say(data.problem);
  if (!data.images.length) { box.replaceChildren(el("p", {text: t("dataset.empty")})); return; }
  box.replaceChildren(...data.images.map((img) => {
    const area = el("textarea", {class: "caption", rows: 3, "data-name": img.name, placeholder: t("dataset.no_caption")});
    area.value = img.caption || "";
    const state = el("span", {class: "saved"});
    area.addEventListener("focus", () => { S.editing = true; });
    area.addEventListener("blur", () => { S.editing = false; });
    area.addEventListener("change", guard(async () => {
      await api("/api/caption", {json: {dataset: S.dataset, image: img.name, caption: area.value}});
      state.textContent = t("dataset.saved");
      setTimeout(() => { state.textContent = ""; }, 2500);
    }));
    const badges = (flags[img.name] || []).map((f) =>
      el("span", {class: "flag " + f.level, title: f.message, text: f.title, "data-check": f.check}));
    return el("figure", {class: "thumb" + (badges.length ? " flagged" : ""), "data-name": img.name},
      el("img", {src: img.url, alt: img.name, loading: "lazy"}), el("figcaption", {text: img.name}),
      el("div", {class: "flags"}, ...badges), area, state);
  }));
}
async function upload(files) {
  if (!S.dataset) { say(t("dataset.pick_first")); return; }
  const form = new FormData();
  form.append("dataset", S.dataset);
  for (const f of files) form.append("files", f, f.name);
  const res = await api("/api/upload", {form});
  say(t("dataset.uploaded", {n: res.written.length}), "ok");
  await renderDataset();
}
async function datasetJob(kind, body) {
  if (!S.dataset) { say(t("dataset.pick_first")); return; }
  const job = await api("/api/" + kind, {json: {dataset: S.dataset, ...body}});
  S.datasetJobs[job.id] = kind;
  $("#dataset-status").textContent = t("job." + job.status, {what: t("kind." + kind)});
}
// ---------------- train ----------------
function fieldInput(f) {
  const name = f.name, value = f.default === null || f.default === undefined ? "" : f.default;
  let input;
  if (f.type === "bool") { input = el("input", {type: "checkbox", name}); input.checked = !!value; }
  else if (f.type === "choice") {
    input = el("select", {name}, ...(f.optional ? [el("option", {value: "", text: "—"})] : []),
      ...f.choices.map((c) => el("option", {value: c, text: c})));
    input.value = value;
  } else if (f.type === "list") { input = el("textarea", {name, rows: 2}); input.value = Array.isArray(value) ? value.join("\n") : value; }
  else {
    input = el("input", {name, type: f.type === "int" || f.type === "float" ? "text" : "text", inputmode: f.type === "text" ? undefined : "decimal"});
    input.value = value;
  }
  input.dataset.type = f.type; input.id = "field-" + name;
  return input;
}
function renderForm() {
  const basic = $("#fields-basic"), adv = $("#fields-advanced");
  basic.replaceChildren(); adv.replaceChildren();
  for (const f of S.fields) {
    const help = f.help;
    const row = el("div", {class: "field", "data-field": f.name},
      el("label", {for: "field-" + f.name, text: f.label + (f.required ? " *" : "")}), fieldInput(f),
      el("div", {class: "help", text: help}), el("div", {class: "field-error", "data-for": f.name}));
    (f.group === "basic" ? basic : adv).append(row);
  }
  $("#presets").replaceChildren(el("span", {text: t("train.presets")}), ...S.presets.map((p) =>
    el("label", {class: "preset"}, el("input", {type: "checkbox", class: "preset", "data-name": p.name}), " " + p.label)));
}
function formValues() {
  const values = {};
  for (const f of S.fields) {
    const input = document.getElementById("field-" + f.name);
    if (!input) continue;
    let v = input.type === "checkbox" ? input.checked : input.value.trim();
    if (input.type === "checkbox" && v === !!f.default) continue;  // unchanged: the config's default
    if (f.type === "list") v = v ? v.split("\n").map((s) => s.trim()).filter(Boolean) : "";
    else if (f.type === "int" && /^-?\d+$/.test(v)) v = parseInt(v, 10);
    else if (f.type === "float" && v !== "" && !isNaN(Number(v))) v = Number(v);
    if (v === "" || (f.default !== null && String(v) === String(f.default) && f.type !== "list")) continue;
    values[f.name] = v;
  }
  return values;
}
function setValues(values) {
  for (const [k, v] of Object.entries(values)) {
    const input = document.getElementById("field-" + k);
    if (!input) continue;
    if (input.type === "checkbox") input.checked = !!v;
    else input.value = Array.isArray(v) ? v.join("\n") : (v === null ? "" : String(v));
  }
}
const chosenPresets = () => [...document.querySelectorAll("input.preset:checked")].map((i) => i.dataset.name);
function showErrors(errors) {
  document.querySelectorAll(".field-error").forEach((n) => { n.textContent = ""; });
  document.querySelectorAll(".field.bad").forEach((n) => n.classList.remove("bad"));
  let first = null;
  for (const [k, text] of Object.entries(errors)) {
    const slot = document.querySelector(`.field-error[data-for="${k}"]`) || $("#form-error");
    slot.textContent = text;
    const row = document.querySelector(`.field[data-field="${k}"]`);
    if (row) { row.classList.add("bad"); if (row.closest("details")) $("#advanced").open = true; first = first || row; }
  }
  if (first) first.scrollIntoView({block: "center"});
  return Object.keys(errors).length === 0;
}
async function checkForm() {
  const res = await api("/api/train/check", {json: {values: formValues(), presets: chosenPresets()}});
  if (!showErrors(res.errors)) return null;
  const view = $("#yaml-view"); view.textContent = res.yaml; view.hidden = false;
  const link = $("#download-yaml");
  link.href = URL.createObjectURL(new Blob([res.yaml + "\n"], {type: "text/yaml"}));
  link.download = (res.values.output_name || "config") + ".yaml"; link.hidden = false;
  return res;
}
async function startTraining() {
  const res = await api("/api/train/start", {json: {values: formValues(), presets: chosenPresets()}});
  if (!showErrors(res.errors)) return;
  S.trainJob = res.job.id;
  say(t("train.started", {name: res.job.lora_name}), "ok");
  await refreshJobs();
}
function drawLoss(points) {
  const c = $("#loss-chart"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  g.fillStyle = "#fff"; g.fillRect(0, 0, c.width, c.height);
  c.dataset.points = points.length;
  if (points.length < 1) return;
  const pad = 30, xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1), y0 = 0, y1 = Math.max(...ys) * 1.05 || 1;
  const X = (x) => pad + (x - x0) / (x1 - x0) * (c.width - 2 * pad);
  const Y = (y) => c.height - pad - (y - y0) / (y1 - y0) * (c.height - 2 * pad);
  g.strokeStyle = "#999"; g.strokeRect(pad, pad, c.width - 2 * pad, c.height - 2 * pad);
  g.fillStyle = "#333"; g.font = "12px sans-serif";
  g.fillText(t("train.loss"), pad, pad - 8); g.fillText(String(x1), c.width - pad - 20, c.height - 10);
  g.fillText(y1.toFixed(3), 2, pad + 10);
  g.strokeStyle = "#d33"; g.lineWidth = 1.5; g.beginPath();
  points.forEach(([x, y], i) => (i ? g.lineTo(X(x), Y(y)) : g.moveTo(X(x), Y(y))));
  g.stroke();
}
function duration(s) {
  if (s === null || s === undefined) return "";
  return s < 90 ? t("time.seconds", {n: Math.round(s)}) : t("time.minutes", {n: Math.round(s / 60)});
}
async function refreshTrain() {
  const trains = S.jobs.filter((j) => j.kind === "train");
  const sel = $("#train-job");
  if (!S.trainJob && trains.length) S.trainJob = trains[0].id;
  sel.replaceChildren(...trains.map((j) => el("option", {value: j.id, text: `${j.title} · ${t("status." + j.status)}`})));
  sel.value = S.trainJob;
  $("#queue").replaceChildren(...trains.filter((j) => j.status === "queued").map((j) => el("li", {text: j.title})));
  if (!S.trainJob) return;
  const d = await api("/api/jobs/" + S.trainJob), p = d.progress, job = d.job;
  const parts = [t("status." + job.status)];
  if (p.total) parts.push(t("train.step", {step: p.step, total: p.total}));
  if (p.steps && p.steps.length) parts.push(t("train.last_loss", {loss: p.steps[p.steps.length - 1][1].toFixed(4)}));
  if (p.eta_s !== null && p.eta_s !== undefined) parts.push(t("train.eta", {time: duration(p.eta_s)}));
  const status = $("#train-status");
  status.textContent = parts.join(" · "); status.dataset.status = job.status; status.dataset.step = p.step || 0;
  drawLoss(p.steps || []);
  const samples = $("#train-samples");
  if (samples.dataset.count !== String((p.samples || []).length)) {
    samples.dataset.count = (p.samples || []).length;
    samples.replaceChildren(...(p.samples || []).map((s) => el("figure", {class: "thumb"},
      el("img", {src: s.url, alt: "step " + s.step}), el("figcaption", {text: t("train.sample_step", {step: s.step})}))));
  }
  $("#train-log").textContent = d.log.split("\n").slice(-25).join("\n");
  const report = $("#train-report"); report.hidden = !p.report; if (p.report) report.href = p.report;
  $("#stop-btn").disabled = !["running", "queued"].includes(job.status);
  $("#resume-btn").disabled = job.status !== "stopped" && job.status !== "failed";
}
// ---------------- jobs ----------------
async function refreshJobs() {
  const data = await api("/api/jobs");
  S.jobs = data.jobs;
  const body = $("#jobs tbody");
  body.replaceChildren(...S.jobs.map((j) => el("tr", {"data-id": j.id, "data-status": j.status},
    el("td", {text: `${t("kind." + j.kind)} · ${j.title}`}),
    el("td", {class: "status-" + j.status}, t("status." + j.status), j.failure ? el("div", {class: "failure", text: j.failure}) : null),
    el("td", {class: "progress"}, progressBar(j.bar)),
    el("td", {text: j.started ? new Date(j.started * 1000).toLocaleTimeString() : ""}),
    el("td", {}, j.result ? el("a", {class: "result", href: j.result, target: "_blank", text: t("jobs.result")}) : null,
      el("button", {class: "log-btn", text: t("jobs.log"), onclick: guard(async () => {
      const d = await api("/api/jobs/" + j.id); $("#job-log").textContent = d.log; })}),
      ["queued", "running"].includes(j.status) ? el("button", {class: "stop-job", text: t("jobs.stop"),
        onclick: guard(async () => { await api(`/api/jobs/${j.id}/stop`, {method: "POST"}); })}) : null))));
  for (const [id, kind] of Object.entries(S.datasetJobs)) {
    const j = S.jobs.find((x) => x.id === id);
    if (!j) continue;
    const status = $("#dataset-status");
    showJob(status, j, kind);
    status.dataset.kind = kind;
    if (!["queued", "running"].includes(j.status)) {
      delete S.datasetJobs[id];
      if (!S.editing) await renderDataset();
    }
  }
  for (const [id, kind] of Object.entries(S.otherJobs || {})) {
    const j = S.jobs.find((x) => x.id === id);
    if (!j) continue;
    const status = $(kind === "generate" ? "#gen-status" : "#tool-status");
    showJob(status, j, kind);
    if (!["queued", "running"].includes(j.status)) {
      delete S.otherJobs[id];
      if (kind === "generate") await refreshGallery(); else await refreshLibrary();
    }
  }
  await refreshTrain();
  await refreshBatchJob();
}
// A job's bar: done of total and the time left, from its progress events (none until the stage counted).
function progressBar(bar) {
  if (!bar || !bar.total) return null;
  const words = [t("jobs.done_of", {done: bar.done, total: bar.total})];
  if (bar.eta_s !== null && bar.eta_s !== undefined) words.push(t("jobs.eta", {time: duration(bar.eta_s)}));
  return el("span", {class: "bar", "data-done": bar.done, "data-total": bar.total},
    el("progress", {max: bar.total, value: bar.done}), el("span", {class: "bar-text", text: " " + words.join(" · ")}));
}
// The status line of a page's own job: what it is doing, its bar, and why it failed (page's language).
function showJob(status, j, kind) {
  status.replaceChildren(t("job." + j.status, {what: t("kind." + kind)}), progressBar(j.status === "running" ? j.bar : null) || "",
    j.failure ? " " + j.failure : "");
  status.dataset.status = j.status;
}
// ---------------- generate ----------------
async function refreshGenerate() {
  await refreshWorkspace();
  const data = await api("/api/loras");
  const box = $("#gen-loras");
  const picked = {};
  box.querySelectorAll(".lora-pick").forEach((row) => {
    picked[row.dataset.path] = [row.querySelector("input[type=checkbox]").checked, row.querySelector("input[type=range]").value];
  });
  box.replaceChildren(el("h3", {text: t("gen.loras")}), ...data.loras.map((l) => {
    const [on, w] = picked[l.path] || [false, "1"];
    const check = el("input", {type: "checkbox"}); check.checked = on;
    const range = el("input", {type: "range", min: "-1", max: "2", step: "0.05", value: w});
    const shown = el("span", {class: "weight", text: Number(w).toFixed(2)});
    range.addEventListener("input", () => { shown.textContent = Number(range.value).toFixed(2); });
    return el("div", {class: "lora-pick", "data-path": l.path}, el("label", {}, check, " " + l.path), range, shown);
  }));
  if (!data.loras.length) box.append(el("p", {text: t("gen.no_loras")}));
  await refreshGallery();
}
async function generate() {
  const job = (await api("/api/generate", {json: {...genSettings(), count: Number($("#gen-count").value),
    grid_weights: $("#gen-grid-weights").value, grid_seeds: $("#gen-grid-seeds").value}})).job;
  (S.otherJobs = S.otherJobs || {})[job.id] = "generate";
  $("#gen-status").textContent = t("job." + job.status, {what: t("kind.generate")});
}
async function refreshGallery() {
  const data = await api("/api/gallery");
  $("#gallery").replaceChildren(...data.images.map((img) => el("figure", {class: img.grid ? "grid" : "shot"},
    el("a", {href: img.url, target: "_blank"}, el("img", {src: img.url, alt: img.name})),
    el("figcaption", {text: img.parameters || img.name}))));
}
// ---------------- batch (the catalogue job, "send to batch" from the generate page) ----------------
function genSettings() {
  const loras = [...document.querySelectorAll(".lora-pick")].filter((r) => r.querySelector("input[type=checkbox]").checked)
    .map((r) => ({path: r.dataset.path, weight: Number(r.querySelector("input[type=range]").value)}));
  const num = (id) => Number($(id).value);
  return {model: $("#gen-model").value, vae: $("#gen-vae").value, loras, prompt: $("#gen-prompt").value, negative: $("#gen-negative").value,
    sampler: $("#gen-sampler").value, steps: num("#gen-steps"), cfg: num("#gen-cfg"), seed: num("#gen-seed"),
    width: num("#gen-width"), height: num("#gen-height")};
}
function sendToBatch() {
  S.batchFrom = genSettings();
  $("#batch-prompt").value = S.batchFrom.prompt.split("\n").map((l) => l.trim()).filter(Boolean).join(" ");
  $("#batch-negative").value = S.batchFrom.negative;
  showTab("batch");
}
function batchRequest() {
  return {...S.batchFrom, prompt: $("#batch-prompt").value, negative: $("#batch-negative").value,
    items: $("#batch-items").value, images_per_item: Number($("#batch-per-item").value),
    batch_size: Number($("#batch-size").value), output: $("#batch-output").value.trim()};
}
function showBatchError(text) { const box = $("#batch-error"); box.textContent = text || ""; return !text; }
async function refreshBatch(pick) {
  $("#batch-intro").textContent = t("batch.intro", {example: "{brand} {model}, {colour}"});
  const f = S.batchFrom;
  $("#batch-from").textContent = !f ? t("batch.nothing_sent") : [`${t("gen.model")}: ${f.model}` +
    (f.vae ? ` · ${t("gen.vae")}: ${f.vae.replace(/^models\/VAE\//, "")}` : ""),
    ...f.loras.map((l) => `LoRA: ${l.path} × ${l.weight}`),
    `${t("gen.sampler")}: ${f.sampler} · ${t("gen.steps")}: ${f.steps} · ${t("gen.cfg")}: ${f.cfg} · ` +
    `${t("gen.seed")}: ${f.seed} · ${f.width}×${f.height}`].join("\n");
  $("#batch-start").disabled = !f; $("#batch-view").disabled = !f;
  const data = await api("/api/batch/items"), sel = $("#batch-items"), keep = pick || sel.value;
  sel.replaceChildren(el("option", {value: "", text: t("batch.none_items")}),
    ...data.items.map((p) => el("option", {value: p, text: p})));
  if (data.items.includes(keep)) sel.value = keep; else if (data.items.length === 1) sel.value = data.items[0];
  await refreshBatchJob();
}
async function checkBatch() {
  const res = await api("/api/batch/check", {json: batchRequest()});
  showBatchError(res.error);
  const view = $("#batch-yaml"); view.textContent = res.yaml; view.hidden = !res.yaml;
}
async function startBatch() {
  const res = await api("/api/batch/start", {json: batchRequest()});
  if (!showBatchError(res.error)) return;
  S.batchJob = res.job.id; $("#batch-yaml").hidden = true;  // the run's progress and images in view
  say(t("batch.started"), "ok");
  await refreshJobs();
}
async function refreshBatchJob() {
  if (!S.batchJob) { const last = S.jobs.find((j) => j.kind === "batch"); if (last) S.batchJob = last.id; }
  if (!S.batchJob || $("#page-batch").hidden) return;
  const d = await api("/api/batch/" + S.batchJob), job = d.job;
  const status = $("#batch-status");
  showJob(status, {...job, bar: d.bar, failure: (S.jobs.find((j) => j.id === job.id) || {}).failure}, "batch");
  $("#batch-stop").disabled = !["running", "queued"].includes(job.status);
  $("#batch-resume").disabled = !["stopped", "failed"].includes(job.status);
  const sheet = $("#batch-sheet"); sheet.hidden = !d.sheet; if (d.sheet) sheet.href = d.sheet;
  $("#batch-count").textContent = d.index_rows ? t("batch.images_made", {n: d.index_rows}) : "";
  const thumbs = $("#batch-thumbs"), key = d.thumbs.map((x) => x.url).join("|");
  if (thumbs.dataset.key !== key) {
    thumbs.dataset.key = key;
    thumbs.replaceChildren(...d.thumbs.map((x) => el("figure", {class: "shot"}, el("img", {src: x.url, alt: x.id}),
      el("figcaption", {text: `${x.id} #${x.n} · ${x.prompt}`}))));
  }
  const failed = $("#batch-failed"); failed.hidden = !d.failed.length;
  failed.querySelector("tbody").replaceChildren(...d.failed.map((r) => el("tr", {},
    ...Object.values(r).map((v) => el("td", {text: v})))));
  $("#batch-log").textContent = d.log.split("\n").slice(-15).join("\n");
}
// ---------------- library ----------------
async function refreshLibrary() {
  const data = await api("/api/loras");
  const finals = data.loras.filter((l) => !l.checkpoint), checkpoints = data.loras.filter((l) => l.checkpoint);
  const older = checkpoints.length ? el("details", {class: "checkpoints"}, el("summary", {text: t("lib.checkpoints", {n: checkpoints.length})}),
    el("ul", {}, ...checkpoints.map((l) => el("li", {}, el("a", {href: "/files/" + l.path + "?download=1", text: l.path}))))) : null;
  $("#library").replaceChildren(...(finals.length ? finals.map((l) => {
    const f = l.facts, facts = [];
    if (f.error) facts.push(el("li", {class: "bad", text: f.error}));
    else {
      facts.push(el("li", {text: `${t("lib.family")}: ${f.family}`}), el("li", {text: `${t("lib.size")}: ${f.size}, ${f.modules} ${t("lib.modules")}`}));
      const ranks = (f.groups || []).map((g) => `${g.group}: ${g.ranks}`).join(", ");
      if (ranks) facts.push(el("li", {text: `${t("lib.ranks")}: ${ranks}`}));
      if (f.trigger_words && f.trigger_words.length) facts.push(el("li", {text: `${t("lib.trigger")}: ${f.trigger_words.join(", ")}`}));
      if (f.top_tags && f.top_tags.length) facts.push(el("li", {text: `${t("lib.tags")}: ${f.top_tags.map((x) => x[0]).join(", ")}`}));
      for (const [k, v] of l.facts_shown || []) facts.push(el("li", {text: `${k}: ${v}`}));
    }
    return el("div", {class: "lora-card", "data-path": l.path}, el("h3", {text: l.name}), el("code", {text: l.path}),
      el("ul", {}, ...facts), l.grid ? el("img", {src: l.grid, class: "grid", alt: "samples"}) : null,
      l.report ? el("a", {href: l.report, target: "_blank", text: t("train.report")}) : null,
      el("a", {href: "/files/" + l.path + "?download=1", text: t("lib.download")}));
  }) : [el("p", {text: t("gen.no_loras")})]), older || "");
}
async function runTool() {
  const job = (await api("/api/tools", {json: {tool: $("#tool-name").value,
    inputs: $("#tool-inputs").value.split(/[\s,]+/).filter(Boolean), base: $("#tool-base").value,
    out: $("#tool-out").value, rank: $("#tool-rank").value ? Number($("#tool-rank").value) : null}})).job;
  (S.otherJobs = S.otherJobs || {})[job.id] = "tool";
  $("#tool-status").textContent = t("job." + job.status, {what: t("kind.tool")});
}
// ---------------- start ----------------
async function start() {
  await loadLang(S.lang);
  const form = await api("/api/train/form");
  S.fields = form.fields; S.presets = form.presets;
  renderForm();
  document.querySelectorAll(".tab").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
  $("#lang").addEventListener("change", guard(async () => {
    const values = formValues();
    await loadLang($("#lang").value);
    const fresh = await api("/api/train/form"); S.fields = fresh.fields; S.presets = fresh.presets;
    renderForm(); setValues(values);
    await refreshWorkspace(); await renderDataset(); await refreshJobs();
    if (!$("#page-library").hidden) await refreshLibrary();
    if (!$("#page-generate").hidden) await refreshGenerate();
    if (!$("#page-batch").hidden) await refreshBatch();
  }));
  $("#dataset-select").addEventListener("change", guard(async () => openDataset($("#dataset-select").value)));
  $("#create-dataset").addEventListener("click", guard(async () => {
    const form = new FormData(); form.append("name", $("#new-dataset-name").value);
    const res = await api("/api/datasets", {form}); await openDataset(res.dataset);
  }));
  $("#open-folder").addEventListener("click", guard(async () => openDataset($("#dataset-path").value.trim())));
  $("#upload-input").addEventListener("change", guard(async (e) => { await upload(e.target.files); e.target.value = ""; }));
  const drop = $("#dropzone");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", guard(async (e) => { e.preventDefault(); drop.classList.remove("over"); await upload(e.dataTransfer.files); }));
  $("#label-btn").addEventListener("click", guard(() => datasetJob("label", {backend: $("#label-backend").value,
    model: $("#label-model").value, trigger: $("#label-trigger").value, overwrite: $("#label-overwrite").checked})));
  $("#doctor-btn").addEventListener("click", guard(() => datasetJob("doctor", {resolution: Number($("#doctor-resolution").value),
    trigger: $("#label-trigger").value})));
  $("#check-btn").addEventListener("click", guard(checkForm));
  $("#start-btn").addEventListener("click", guard(startTraining));
  $("#load-yaml").addEventListener("change", guard(async (e) => {
    const form = new FormData(); form.append("file", e.target.files[0]);
    const res = await api("/api/train/load", {form}); renderForm(); setValues(res.values); e.target.value = "";
    say(t("train.loaded"), "ok");
  }));
  $("#train-job").addEventListener("change", guard(async () => { S.trainJob = $("#train-job").value; await refreshTrain(); }));
  $("#stop-btn").addEventListener("click", guard(async () => { await api(`/api/jobs/${S.trainJob}/stop`, {method: "POST"}); await refreshJobs(); }));
  $("#resume-btn").addEventListener("click", guard(async () => {
    const res = await api(`/api/jobs/${S.trainJob}/resume`, {method: "POST"}); S.trainJob = res.job.id; await refreshJobs(); }));
  $("#demo-model-btn").addEventListener("click", guard(async () => { const r = await api("/api/models/demo", {method: "POST"});
    await refreshWorkspace(); $("#gen-model").value = r.model; }));
  $("#train-demo-model").addEventListener("click", guard(async () => {
    const r = await api("/api/models/demo", {method: "POST"});
    document.getElementById("field-base_model").value = r.model; await refreshWorkspace();
  }));
  $("#gen-btn").addEventListener("click", guard(generate));
  $("#tool-btn").addEventListener("click", guard(runTool));
  $("#gen-to-batch").addEventListener("click", guard(sendToBatch));
  $("#batch-view").addEventListener("click", guard(checkBatch));
  $("#batch-start").addEventListener("click", guard(startBatch));
  $("#batch-stop").addEventListener("click", guard(async () => { await api(`/api/jobs/${S.batchJob}/stop`, {method: "POST"}); await refreshJobs(); }));
  $("#batch-resume").addEventListener("click", guard(async () => {
    const res = await api(`/api/jobs/${S.batchJob}/resume`, {method: "POST"}); S.batchJob = res.job.id; await refreshJobs(); }));
  $("#batch-upload").addEventListener("change", guard(async (e) => {
    const form = new FormData(); form.append("file", e.target.files[0]);
    const res = await api("/api/batch/items", {form}); e.target.value = "";
    say(t("batch.uploaded", {path: res.items}), "ok"); await refreshBatch(res.items);
  }));
  await refreshWorkspace();
  await renderDataset();
  showTab(localStorage.getItem("tab") || "dataset");
  await refreshJobs();
  setInterval(guard(refreshJobs), 1000);
}
start().catch((e) => say(e.message));
