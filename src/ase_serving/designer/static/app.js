// The API design page (asectl api web): edit a design, ask /api/check what asectl api create
// says of it, show that next to each field and in the preview; save, push, try it.
import { addData, addParam, cellOf, h, renderData, renderParams, renderService } from "./tables.js";

const token = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);
const ctx = { design: null, choices: null, rows: new Map(), changed };
let start = null; // /api/start's answer
let checked = null; // the last /api/check answer shown
let asked = 0; // checks sent
let answered = 0; // the newest check shown
let timer = null;
let tryEdited = false;
let notes = []; // what opening a file said: [{text, kind, row, field, key}]

// -- talking to the server ----------------------------------------------------------------------

async function api(path, body) {
  const opts = { method: body === undefined ? "GET" : "POST", headers: { "X-ASE-Token": token } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, opts);
  } catch (err) {
    return { ok: false, status: 0, doc: { error: "the page's server is gone: start `asectl api web` again" } };
  }
  let doc;
  try { doc = await resp.json(); } catch { doc = { error: `HTTP ${resp.status}` }; }
  return { ok: resp.ok, status: resp.status, doc };
}

function status(text, kind = "info", ...extra) {
  const el = $("status");
  el.className = `status ${kind}`;
  el.replaceChildren(h("span", {}, text), ...extra);
}

// -- the design ---------------------------------------------------------------------------------

function draftKey() {
  return `ase-api-web:${start.file}`;
}

function render() {
  ctx.rows = new Map();
  renderService(ctx, $("service"));
  renderParams(ctx, $("params"));
  renderData(ctx, "inputs", $("inputs"));
  renderData(ctx, "outputs", $("outputs"));
  $("params-open").checked = !!ctx.design.paramsOpen;
}

function changed(structural) {
  localStorage.setItem(draftKey(), JSON.stringify(ctx.design));
  if (structural) render();
  clearTimeout(timer);
  // Typing waits for a pause; a click (add, delete, a type) is checked at once.
  timer = setTimeout(check, structural ? 0 : 120);
}

/** Show a new design, with what opening it said (problems and warnings of the file as written). */
function load(design, opened, extra = []) {
  ctx.design = design;
  localStorage.removeItem(draftKey());
  tryEdited = false;
  render();
  notes = [];
  const said = opened ? [...opened.problems.map((p) => ({ ...p, kind: "error" })), ...opened.warnings.map((p) => ({ ...p, kind: "warning" }))] : [];
  for (const p of said) {
    const targets = p.at.length ? p.at : [null];
    for (const at of targets) notes.push({ text: p.text, message: p.message, kind: p.kind, row: at && ctx.rows.get(at), field: at && !ctx.rows.has(at) ? at : null, key: p.key, table: at ? at.split(".")[0] : null });
  }
  const box = $("opened");
  box.hidden = !said.length && !extra.length;
  box.replaceChildren(
    h("p", {}, said.length ? `Opened with ${opened.problems.length} problem(s) and ${opened.warnings.length} warning(s):` : ""),
    h("ul", { class: "checks" }, said.map((p) => h("li", { class: p.kind }, p.text)), extra.map((t) => h("li", { class: "warning" }, t))),
    h("button", { type: "button", onclick: () => { notes = []; box.hidden = true; showChecks(); } }, "Dismiss these notes"),
  );
  check();
}

// -- checks and preview -------------------------------------------------------------------------

async function check() {
  const mine = ++asked;
  const r = await api("/api/check", { design: ctx.design });
  if (mine < answered) return;
  answered = mine;
  if (!r.ok) { status(r.doc.error, "error"); return; }
  checked = r.doc;
  showChecks();
  showPreview();
  if (document.body.dataset.state !== "ready") performance.mark("ase-page-ready");
  document.body.dataset.state = "ready";
  document.body.dataset.checks = String(mine);
}

/** Say a problem under its row (or its field) and mark the control it is about. */
function place(at, table, key, text, kind) {
  const row = ctx.rows.has(at);
  const box = document.querySelector(`[data-msg="${CSS.escape(`${at}|${row ? "row" : ""}`)}"]`);
  if (!box) return false;
  const id = `${box.id}-${box.childElementCount}`;
  box.append(h("p", { class: kind, id }, text));
  let control = null;
  if (row) {
    const cell = document.querySelector(`tr[data-at="${CSS.escape(at)}"] > td[data-cell="${cellOf(table, key)}"]`);
    control = cell && (cell.querySelector(`[data-key="${CSS.escape(key || "")}"]`) || cell.querySelector("input, select, button"));
  } else {
    control = box.parentElement.querySelector("input, select");
  }
  if (control && kind !== "note") {
    if (kind === "error") control.setAttribute("aria-invalid", "true");
    const ids = new Set((control.getAttribute("aria-describedby") || "").split(" ").filter(Boolean));
    control.setAttribute("aria-describedby", [...ids, id].join(" "));
  }
  return true;
}

function showChecks() {
  for (const box of document.querySelectorAll("[data-msg]")) box.replaceChildren();
  for (const el of document.querySelectorAll("[aria-invalid], [aria-describedby]")) {
    el.removeAttribute("aria-invalid");
    el.removeAttribute("aria-describedby");
  }
  if (!checked) return;
  const all = [...checked.problems.map((p) => ({ ...p, kind: "error" })), ...checked.warnings.map((p) => ({ ...p, kind: "warning" }))];
  for (const p of all) for (const at of p.at) place(at, at.split(".")[0], p.key, p.message, p.kind);
  const where = new Map([...ctx.rows].map(([at, row]) => [row, at]));
  for (const n of notes) {
    const at = n.row ? where.get(n.row) : n.field;
    if (at) place(at, n.row ? at.split(".")[0] : null, n.key, `${n.message} (when opened)`, "note");
  }
  $("checks").replaceChildren(...all.map((p) => h("li", { class: p.kind }, p.text)));
  if (!all.length) $("checks").append(h("li", { class: "ok" }, "No problems: asectl api create takes this as it is."));
  const n = checked.problems.length;
  $("checks-count").textContent = n ? `${n} problem(s)` : "ok";
  $("checks-count").className = n ? "count bad" : "count good";
}

const json = (doc) => (doc === undefined ? "" : JSON.stringify(doc, null, 2));

function showPreview() {
  const fix = "(fix the problems listed under Checks to see it)";
  $("preview-yaml").textContent = checked.yaml;
  $("preview-schema").textContent = checked.schemaText || fix;
  const ex = checked.examples || {};
  $("preview-once").textContent = checked.schema ? (ex.once ? json(ex.once) : "(this service takes no once requests: its interface is session)") : fix;
  $("preview-session").textContent = checked.schema ? (ex.session ? json(ex.session) : "(this service takes no sessions: its interface is once)") : fix;
  if (!tryEdited && ex.once) $("try-body").value = json(ex.once);
}

// -- actions ------------------------------------------------------------------------------------

async function save() {
  const r = await api("/api/save", { design: ctx.design });
  if (!r.ok) { status(r.doc.error, "error"); return; }
  localStorage.removeItem(draftKey());
  const kept = r.doc.backup ? ` (the previous one is kept as ${r.doc.backup})` : "";
  status(`Saved ${r.doc.yaml}${kept} and ${r.doc.schema}`, "done");
}

async function push() {
  status("Pushing…");
  const r = await api("/api/push", { design: ctx.design });
  if (!r.ok) { status(r.doc.error, "error"); return; }
  const d = r.doc;
  const more = d.notes.length ? ` (${d.notes.join("; ")})` : "";
  status(`Pushed ${d.service}/${d.version}/${d.name} to project ${d.project}, group ${d.group}: revision ${d.revision}${more}`, "done");
}

function decodedOutputs(doc) {
  const out = [];
  for (const [name, entry] of Object.entries((doc && doc.payload) || {})) {
    if (entry && typeof entry.text === "string") {
      try {
        const bytes = Uint8Array.from(atob(entry.text), (c) => c.charCodeAt(0));
        out.push(`${name}: ${new TextDecoder("utf-8", { fatal: true }).decode(bytes)}`);
      } catch { /* not UTF-8 text: the JSON shows it */ }
    }
  }
  return out;
}

async function tryIt() {
  const result = $("try-result");
  let body;
  try { body = JSON.parse($("try-body").value); } catch (err) {
    result.replaceChildren(h("p", { class: "error" }, `The request is not JSON: ${err.message}`));
    return;
  }
  result.replaceChildren(h("p", {}, "Sending…"));
  const r = await api("/api/try", { design: ctx.design, body });
  const d = r.doc;
  const kids = [];
  if (d.error) kids.push(h("p", { class: "error" }, d.error));
  if (d.status) kids.push(h("p", { class: d.error ? "" : "done" }, `HTTP ${d.status} from ${d.url} (app id ${d.app_id})`));
  for (const line of decodedOutputs(d.response)) kids.push(h("p", { class: "decoded" }, line));
  if (d.response !== undefined) kids.push(h("pre", {}, json(d.response)));
  result.replaceChildren(...kids);
}

async function listSchemas() {
  const r = await api("/api/schemas");
  const sel = $("start-schema");
  if (!r.ok) { status(r.doc.error, "error"); return; }
  const items = r.doc.items;
  sel.replaceChildren(...(items.length ? items.map((i) => h("option", { value: JSON.stringify(i) }, `${i.service}/${i.version}/${i.name} (revision ${i.revision})`)) : [h("option", { value: "" }, "(none in this project and group)")]));
  sel.disabled = !items.length;
  $("start-open").disabled = !items.length;
  status(`${items.length} service schema(s) in project ${r.doc.project}, group ${r.doc.group}`);
}

async function openFrom(path, body, what) {
  const r = await api(path, body);
  if (!r.ok) { status(r.doc.error, "error"); return; }
  load(r.doc.design, r.doc.opened);
  status(`Opened ${what}`);
}

async function copy(button) {
  const text = $(button.dataset.copy).textContent;
  try { await navigator.clipboard.writeText(text); } catch {
    const area = h("textarea", {}, text);
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  button.textContent = "Copied";
  setTimeout(() => { button.textContent = "Copy"; }, 1200);
}

function selectTab(tab) {
  for (const t of document.querySelectorAll('[role="tab"]')) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    $(t.getAttribute("aria-controls")).hidden = !on;
  }
}

function wire() {
  $("save").addEventListener("click", save);
  $("push").addEventListener("click", push);
  $("add-param").addEventListener("click", () => addParam(ctx));
  $("add-input").addEventListener("click", () => addData(ctx, "inputs"));
  $("add-output").addEventListener("click", () => addData(ctx, "outputs"));
  $("params-open").addEventListener("change", (e) => { ctx.design.paramsOpen = e.target.checked; changed(false); });
  $("try-send").addEventListener("click", tryIt);
  $("try-body").addEventListener("input", () => { tryEdited = true; });
  $("try-reset").addEventListener("click", () => { tryEdited = false; if (checked) showPreview(); });
  $("start-new").addEventListener("click", () => { load(structuredClone(start.blank), null); status("A new design"); });
  $("start-project").addEventListener("click", async () => {
    const r = await api("/api/start");
    if (r.ok) { start = r.doc; load(start.design, start.opened, start.notes || []); status(`Opened ${start.file}`); }
  });
  $("start-file").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (file) await openFrom("/api/parse", { text: await file.text(), name: file.name }, file.name);
  });
  $("start-list").addEventListener("click", listSchemas);
  $("start-open").addEventListener("click", () => {
    const item = JSON.parse($("start-schema").value || "null");
    if (item) openFrom("/api/open-schema", item, `${item.service}/${item.version}/${item.name} from the config centre`);
  });
  for (const b of document.querySelectorAll("button.copy")) b.addEventListener("click", () => copy(b));
  for (const t of document.querySelectorAll('[role="tab"]')) t.addEventListener("click", () => selectTab(t));
}

async function boot() {
  wire();
  if (!token) {
    status("This page needs its token: open the URL that `asectl api web` printed.", "error");
    document.body.dataset.state = "no-token";
    return;
  }
  const r = await api("/api/start");
  if (!r.ok) { status(r.doc.error, "error"); document.body.dataset.state = "refused"; return; }
  start = r.doc;
  ctx.choices = start.choices;
  // The folder's name and the file's, the whole path on hover.
  $("file").textContent = start.file.split("/").slice(-2).join("/");
  $("file").title = start.file;
  const draft = localStorage.getItem(draftKey());
  if (draft && draft !== JSON.stringify(start.design)) {
    ctx.design = JSON.parse(draft);
    render();
    check();
    status("Restored your unsaved draft (kept in this browser).", "info",
      h("button", { type: "button", onclick: () => { load(start.design, start.opened, start.notes || []); status(`Opened ${start.file}`); } }, "Discard the draft"));
    return;
  }
  load(start.design, start.opened, start.notes || []);
  status(start.source === "file" ? `Opened ${start.file}` : `A new design for ${start.file} (not written yet)`);
}

boot();
