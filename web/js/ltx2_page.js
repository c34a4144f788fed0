// The LTX-2 pack's page extension: memory and progress drawn on the pack's nodes.
//
//   LoadLTX2Quantized  the policies, what they will hold (from the files' headers), the bytes the pack holds and
//                      whether each component is resident
//   VRAMGuard          a bar of budget / used / peak, live during a run, and the last run's report
//   A2VSampler         the stage (base / refine), what it is doing and the denoising step
//
// Its figures come from the pack's `ltx2.vram` websocket event (the budget's state, sent after each node, at each
// denoising step and while a component loads; GET /ltx2/vram gives the same when the page opens and when the queue
// changes) and ComfyUI's own execution events (executing, progress, executed, ...).
// Plain JavaScript against ComfyUI's frontend extension API; no build step.

import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";

const EVENT = "ltx2.vram";
const PANEL = "ltx2_panel";
const GIB = 2 ** 30;
const MIB = 2 ** 20;

let vram = null; // the budget's latest state
let received = 0; // states received on the websocket, so that a slower GET does not overwrite a newer one
let executing = null; // id of the node running now
const samplers = new Map(); // node id -> {status, value, max, doing, started, seconds}

function formatBytes(n) {
  if (n == null) return "—";
  if (n >= GIB) return `${(n / GIB).toFixed(2)} GiB`;
  if (n >= MIB) return `${(n / MIB).toFixed(1)} MiB`;
  if (n > 0) return `${(n / 1024).toFixed(1)} KiB`;
  return "0";
}

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text != null) e.textContent = text;
  return e;
}

function widgetValue(node, name) {
  return node.widgets?.find((w) => w.name === name)?.value;
}

// --- the three panels: each draws its node's element from the latest state ---

// What the loader's choices will hold, from the files' headers (GET /ltx2/estimate): fetched when they change.
const ESTIMATE_INPUTS = ["ckpt_name", "text_encoder", "quantization", "text_encoder_quantization", "video_vae",
  "audio_vae", "text_projection"];

function estimateText(node) {
  const answer = node.ltx2Estimate;
  if (!answer) return "…";
  if (answer.error) return answer.error;
  return Object.entries(answer.components ?? {})
    .map(([name, c]) => `${name.replace("_", " ")} ${formatBytes(c.bytes)} (file ${formatBytes(c.file_bytes)})`)
    .join(" · ");
}

async function fetchEstimate(node) {
  const values = Object.fromEntries(ESTIMATE_INPUTS.map((n) => [n, widgetValue(node, n) ?? "none"]));
  const key = JSON.stringify(values);
  if (node.ltx2EstimateKey === key) return;
  node.ltx2EstimateKey = key;
  node.ltx2Estimate = null;
  try {
    const answer = await (await api.fetchApi(`/ltx2/estimate?${new URLSearchParams(values)}`)).json();
    if (node.ltx2EstimateKey !== key) return; // the choices changed meanwhile
    node.ltx2Estimate = answer;
    node.ltx2Panel?.draw(node, node.ltx2Panel.root);
  } catch (error) {
    console.warn("LTX-2: GET /ltx2/estimate failed", error);
  }
}

const loaderPanel = {
  height: 118,
  draw(node, root) {
    fetchEstimate(node);
    const policy = widgetValue(node, "quantization");
    const textPolicy = widgetValue(node, "text_encoder_quantization");
    const residency = widgetValue(node, "residency");
    const resident = (vram?.components ?? []).filter((c) => c.resident);
    const held = vram?.resident_bytes ?? 0;
    const used = vram?.last_run?.components ?? [];
    root.replaceChildren(
      row("policy", `${policy} · text encoder ${textPolicy} · ${residency}`, "policy"),
      row("estimate", estimateText(node), "estimate"),
      row("held", vram ? `${formatBytes(held)} in ${resident.length} component${resident.length === 1 ? "" : "s"}`
        : "—", "held", { bytes: held }),
      row("resident", resident.length
        ? resident.map((c) => `${c.name} ${formatBytes(c.bytes)}${c.in_use ? " (in use)" : ""}`).join(", ")
        : "nothing resident", "resident"),
      row("last run", used.length ? `built ${used.join(", ")}` : "—", "built"),
    );
  },
};

const guardPanel = {
  height: 282,
  draw(node, root) {
    const budget = vram?.budget_bytes; // null until the pack first ran: the device's memory less a reserve
    const used = vram?.resident_bytes ?? 0;
    const run = vram?.last_run;
    const live = vram?.phase; // the phase running now, with its peak so far
    const peak = Math.max(run?.peak_bytes ?? 0, live?.peak_bytes ?? 0);
    const scale = Math.max(budget ?? 0, peak, used, 1);
    const bar = el("div", "ltx2-bar");
    const usedFill = el("div", "ltx2-bar-used");
    usedFill.style.width = `${(100 * used) / scale}%`;
    const peakMark = el("div", "ltx2-bar-peak");
    peakMark.style.left = `${Math.min(100, (100 * peak) / scale)}%`;
    const budgetMark = el("div", "ltx2-bar-budget");
    budgetMark.style.left = `${(100 * (budget ?? scale)) / scale}%`;
    bar.append(usedFill, peakMark, budgetMark);
    const legend = el("div", "ltx2-legend");
    legend.append(
      figure("used", used, "ltx2-used"), figure("peak", peak, "ltx2-peak"), figure("budget", budget, "ltx2-budget"));
    const status = el("div", "ltx2-status", live
      ? `running: ${live.name}, ${live.seconds.toFixed(1)} s`
      : run ? `last run: ${run.elapsed_seconds.toFixed(2)} s, peak ${formatBytes(run.peak_bytes)}, `
        + `read ${formatBytes(run.bytes_read ?? 0)} (${run.mode}, ${run.policy})` : "no run yet");
    status.dataset.role = "summary";
    if (run) {
      Object.assign(status.dataset, {
        seconds: run.elapsed_seconds, peakBytes: run.peak_bytes, bytesRead: run.bytes_read ?? 0, runId: run.run_id });
    }
    // Which compute dtypes ran (float32 on a CPU, bf16 on Ampere and newer; ComfyUI's flags decide over that).
    const compute = el("div", "ltx2-status", run?.precision ?? "");
    compute.dataset.role = "precision";
    // What the user should know about the inputs, e.g. a prompt cut to the text encoder's token limit.
    const notes = el("div", "ltx2-status ltx2-note", (run?.notes ?? []).join("; "));
    notes.dataset.role = "notes";
    root.replaceChildren(bar, legend, status, compute, notes, reportTable(run));
  },
};

const samplerPanel = {
  height: 46,
  draw(node, root) {
    const stage = widgetValue(node, "stage") ?? "?";
    const s = samplers.get(String(node.id));
    let text = `${stage}: not run yet`;
    let fraction = 0;
    if (s) {
      fraction = s.max ? s.value / s.max : 0;
      const step = s.max ? `step ${s.value}/${s.max}` : "";
      if (s.status === "running") text = `${stage}: ${[s.doing, step].filter(Boolean).join(", ") || "starting"}`;
      else if (s.status === "done") text = `${stage}: done, ${step || "no steps"} in ${s.seconds.toFixed(1)} s`;
      else if (s.status === "cached") text = `${stage}: cached (not run again)`;
      else text = `${stage}: ${s.status}${step ? ` at ${step}` : ""}`;
    }
    const bar = el("div", "ltx2-bar ltx2-steps");
    const fill = el("div", "ltx2-bar-used");
    fill.style.width = `${100 * fraction}%`;
    bar.append(fill);
    const line = el("div", "ltx2-status", text);
    line.dataset.role = "step";
    Object.assign(line.dataset, { stage, value: s?.value ?? 0, max: s?.max ?? 0, status: s?.status ?? "idle" });
    root.replaceChildren(line, bar);
  },
};

const PANELS = { LoadLTX2Quantized: loaderPanel, VRAMGuard: guardPanel, A2VSampler: samplerPanel };

function row(label, value, role, data = {}) {
  const r = el("div", "ltx2-row");
  const v = el("span", "ltx2-value", value);
  r.dataset.role = role;
  Object.assign(r.dataset, data);
  r.append(el("span", "ltx2-label", label), v);
  return r;
}

function figure(label, bytes, className) {
  const f = el("span", `ltx2-figure ${className}`, `${label} ${formatBytes(bytes)}`);
  f.dataset.role = label;
  if (bytes != null) f.dataset.bytes = bytes;
  return f;
}

function reportTable(run) {
  const table = el("table", "ltx2-report");
  if (!run?.phases?.length) return table;
  const head = el("tr");
  head.append(el("th", null, "phase"), el("th", null, "s"), el("th", null, "peak"), el("th", null, "read"));
  table.append(head);
  // The run's timed phases (text encode, stage 1 denoise, ..., decode): "stage" is base or refine only.
  for (const phase of run.phases) {
    const tr = el("tr");
    tr.dataset.role = "phase";
    // Bytes read from model files by the builds of the phase's components (0 for a kept one).
    const read = (phase.components ?? []).reduce((sum, c) => sum + (c.bytes_read ?? 0), 0);
    Object.assign(tr.dataset, { name: phase.name, seconds: phase.seconds, peakBytes: phase.peak_bytes,
      bytesRead: read });
    tr.append(el("td", null, phase.name), el("td", null, phase.seconds.toFixed(2)),
      el("td", null, formatBytes(phase.peak_bytes)), el("td", null, formatBytes(read)));
    table.append(tr);
  }
  return table;
}

// --- wiring ---

function ourNodes() {
  return (app.graph?.nodes ?? []).filter((n) => n.ltx2Panel);
}

function redraw() {
  for (const node of ourNodes()) node.ltx2Panel.draw(node, node.ltx2Panel.root);
}

function addPanel(node, panel) {
  const root = el("div", "ltx2-panel");
  root.dataset.ltx2 = node.comfyClass;
  const widget = node.addDOMWidget(PANEL, PANEL, root, {
    serialize: false, // not a value: kept out of the workflow and the prompt
    hideOnZoom: false,
    getMinHeight: () => panel.height,
    getMaxHeight: () => panel.height,
  });
  widget.serialize = false;
  node.ltx2Panel = { ...panel, root };
  for (const w of node.widgets ?? []) {
    if (w === widget) continue;
    const callback = w.callback;
    w.callback = function (...args) {
      const result = callback?.apply(this, args);
      panel.draw(node, root);
      return result;
    };
  }
  panel.draw(node, root);
}

async function refresh() {
  const before = received;
  try {
    const state = await (await api.fetchApi("/ltx2/vram")).json();
    if (received === before) vram = state;
  } catch (error) {
    console.warn("LTX-2: GET /ltx2/vram failed", error);
  }
  redraw();
}

function finishSampler(id, status) {
  const s = samplers.get(id);
  if (s?.status !== "running") return;
  s.status = status;
  s.seconds = (performance.now() - s.started) / 1000;
}

function listen() {
  // The queue changed (a prompt queued or finished): read the state again, whoever changed it.
  api.addEventListener("status", refresh);
  api.addEventListener(EVENT, ({ detail }) => {
    vram = detail;
    received += 1;
    const s = samplers.get(executing);
    if (s && detail.phase) s.doing = detail.phase.name;
    redraw();
  });
  api.addEventListener("execution_start", () => {
    samplers.clear();
    executing = null;
    redraw();
  });
  api.addEventListener("execution_cached", ({ detail }) => {
    for (const id of detail?.nodes ?? []) samplers.set(String(id), { status: "cached", value: 0, max: 0 });
    redraw();
  });
  api.addEventListener("executing", ({ detail }) => {
    if (executing != null) finishSampler(executing, "done");
    executing = detail == null ? null : String(detail);
    if (executing != null && app.graph?.getNodeById(executing)?.comfyClass === "A2VSampler") {
      samplers.set(executing, { status: "running", value: 0, max: 0, doing: "", started: performance.now() });
    }
    redraw();
  });
  api.addEventListener("progress", ({ detail }) => {
    const s = samplers.get(String(detail.node));
    if (!s) return;
    Object.assign(s, { value: detail.value, max: detail.max });
    redraw();
  });
  api.addEventListener("executed", ({ detail }) => {
    finishSampler(String(detail.node), "done");
    redraw();
  });
  api.addEventListener("execution_success", () => {
    if (executing != null) finishSampler(executing, "done");
    executing = null;
    redraw();
  });
  for (const [event, status] of [["execution_error", "failed"], ["execution_interrupted", "interrupted"]]) {
    api.addEventListener(event, () => {
      if (executing != null) finishSampler(executing, status);
      executing = null;
      redraw();
    });
  }
}

// --- queue-time errors: under the input they are about ---
// ComfyUI attaches a node's validate_inputs message to every input the method takes: the page then marks each of
// the node's widgets red and lists the one message once per input. The pack's messages start with the input(s)
// they are about ("cfg: nan is not a number ...", "width and height must be ..."), so only those entries are
// kept (the first one when the message names no input of the list). Prompts sent over the API get ComfyUI's
// response unchanged.
const PACK_NODES = new Set(["LoadLTX2Quantized", "A2VSampler", "SpatialUpscale", "LTX2Decode", "VRAMGuard"]);

export function keepNamedInputs(nodeErrors) {
  for (const nodeError of Object.values(nodeErrors ?? {})) {
    if (!PACK_NODES.has(nodeError.class_type)) continue;
    const custom = nodeError.errors.filter((e) => e.type === "custom_validation_failed" && e.extra_info?.input_name);
    if (custom.length < 2) continue;
    const first = custom[0];
    const message = first.details.slice(first.extra_info.input_name.length + 3); // "<input> - <message>"
    const head = message.split(/[:;]/)[0];
    const named = custom.filter((e) => new RegExp(`(^|[^\\w])${e.extra_info.input_name}($|[^\\w])`).test(head));
    const keep = new Set(named.length ? named : [first]);
    nodeError.errors = nodeError.errors.filter((e) => !custom.includes(e) || keep.has(e));
  }
}

function filterQueueErrors() {
  const queuePrompt = api.queuePrompt.bind(api);
  api.queuePrompt = async (...args) => {
    try {
      const result = await queuePrompt(...args);
      keepNamedInputs(result?.node_errors);
      return result;
    } catch (error) {
      keepNamedInputs(error?.response?.node_errors); // the page shows these (ComfyUI's PromptExecutionError)
      throw error;
    }
  };
}

const STYLE = `
.ltx2-panel { font: 12px/1.35 sans-serif; color: var(--input-text, #ddd); padding: 4px 6px; box-sizing: border-box;
  overflow: hidden; height: 100%; }
.ltx2-row { display: flex; gap: 8px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.ltx2-label { color: var(--descrip-text, #999); min-width: 56px; }
.ltx2-value { overflow: hidden; text-overflow: ellipsis; }
.ltx2-bar { position: relative; height: 14px; border-radius: 3px; margin: 4px 0;
  background: var(--comfy-input-bg, #222); border: 1px solid var(--border-color, #444); }
.ltx2-steps { height: 6px; margin: 2px 0; }
.ltx2-bar-used { position: absolute; left: 0; top: 0; bottom: 0; background: #3b82f6; border-radius: 3px; }
.ltx2-bar-peak, .ltx2-bar-budget { position: absolute; top: -3px; bottom: -3px; width: 2px; margin-left: -1px; }
.ltx2-bar-peak { background: #f59e0b; }
.ltx2-bar-budget { background: #ef4444; }
.ltx2-legend { display: flex; gap: 10px; }
.ltx2-used::before, .ltx2-peak::before, .ltx2-budget::before { content: ""; display: inline-block; width: 8px;
  height: 8px; margin-right: 4px; border-radius: 2px; }
.ltx2-used::before { background: #3b82f6; }
.ltx2-peak::before { background: #f59e0b; }
.ltx2-budget::before { background: #ef4444; }
.ltx2-status { margin: 3px 0; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.ltx2-report { border-collapse: collapse; width: 100%; }
.ltx2-report th { color: var(--descrip-text, #999); font-weight: normal; text-align: left; }
.ltx2-report td, .ltx2-report th { padding: 0 4px 0 0; }
.ltx2-report td:nth-child(n+2), .ltx2-report th:nth-child(n+2) { text-align: right; }
`;

app.registerExtension({
  name: "ltx2_a2v.page",
  async setup() {
    document.head.append(el("style", null, STYLE));
    filterQueueErrors();
    listen();
    await refresh();
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const panel = PANELS[nodeData.name];
    if (!panel) return;
    const created = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function (...args) {
      const result = created?.apply(this, args);
      addPanel(this, panel);
      return result;
    };
    const configured = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function (...args) {
      // A loaded workflow sets the widgets' values (and the node's saved size) after the node was created.
      const result = configured?.apply(this, args);
      const [width, height] = this.computeSize();
      this.setSize([Math.max(this.size[0], width), Math.max(this.size[1], height)]);
      this.ltx2Panel?.draw(this, this.ltx2Panel.root);
      return result;
    };
  },
});
