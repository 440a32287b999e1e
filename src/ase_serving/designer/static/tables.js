// The API design page's forms: the service fields and the three tables, drawn from the design
// (designer/design.py's model). Editing a field changes the design and calls ctx.changed();
// nothing here checks anything: every problem comes from /api/check (asectl api create's code).

/** An element: h("input", {"aria-label": "x", oninput: f}, ...children). */
export function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined && kid !== false) el.append(kid);
  return el;
}

/** The keywords the range cell edits (all others have their own cell). */
export const RANGE_KEYS = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
  "minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties", "uniqueItems",
  "enum", "const", "pattern", "format"];
const BOUNDS = {
  integer: [["minimum", "min"], ["maximum", "max"]],
  number: [["minimum", "min"], ["maximum", "max"]],
  string: [["minLength", "min length"], ["maxLength", "max length"]],
  array: [["minItems", "min items"], ["maxItems", "max items"]],
};
const DATA_CELLS = ["name", "type", "encoding", "format", "sample_rate", "channels", "compress",
  "required", "description"];

/** The cell of a row that a problem's keyword is about. */
export function cellOf(table, key) {
  if (table !== "params") return DATA_CELLS.includes(key) ? key : "name";
  if (RANGE_KEYS.includes(key)) return "range";
  if (["type", "properties", "items"].includes(key)) return "type";
  if (["default", "description", "required"].includes(key)) return key;
  return "name";
}

/** What a user typed, as the YAML value: text for strings, else JSON when it parses. */
export function typed(text, type) {
  const t = text.trim();
  if (t === "") return undefined;
  if (type === "string") return text;
  try { return JSON.parse(t); } catch { return text; }
}

function shown(v) {
  if (v === undefined || v === null) return "";
  return typeof v === "string" ? v : JSON.stringify(v);
}

function number(text) {
  const t = text.trim();
  if (t === "") return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : text;
}

function list(text) {
  return text.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

function set(obj, key, value) {
  if (value === undefined) delete obj[key];
  else obj[key] = value;
}

function msg(at, cell) {
  return h("div", { class: "msg", "data-msg": `${at}|${cell}`, id: `msg-${at}|${cell}` });
}

/** The line under a row where its problems are said (the field itself is marked). */
function msgRow(at, span) {
  return h("tr", { class: "msgs" }, h("td", { colspan: span }, msg(at, "row")));
}

function input(label, value, onchange, attrs = {}) {
  return h("input", { type: "text", "aria-label": label, value: shown(value), oninput: (e) => onchange(e.target.value), ...attrs });
}

function select(label, options, value, onchange, key) {
  const known = options.some(([v]) => v === value);
  const opts = known ? options : [...options, [value ?? "", value === undefined || value === "" ? "(none)" : value]];
  return h("select", { "aria-label": label, "data-key": key, onchange: (e) => onchange(e.target.value) },
    opts.map(([v, text]) => h("option", { value: v, selected: v === (value ?? "") }, text)));
}

function pairs(values) {
  return values.map((v) => (Array.isArray(v) ? v : [v, v]));
}

// -- the service --------------------------------------------------------------------------------

const INTERFACES = [["once,session", "Both: once (HTTP POST) and session (WebSocket)"],
  ["once", "Once, over HTTP (POST)"], ["session", "Session, streaming over WebSocket"]];
const SERVICE_FIELDS = [
  ["metadata.serviceName", "Service id", "text"],
  ["metadata.version", "Version", "text"],
  ["metadata.name", "Schema name (schemas/NAME.json)", "text"],
  ["metadata.labels.category", "Category", "text"],
  ["service.description", "Description", "text"],
  ["service.interface", "Interface type", "interface"],
  ["service.read_timeout", "Read timeout (seconds)", "number"],
  ["service.session_timeout", "Session timeout (seconds)", "number"],
  ["service.queue_timeout", "Queue timeout (seconds)", "number"],
  ["service.max_body", "Max body (bytes)", "number"],
  ["service.max_frame", "Max frame (bytes)", "number"],
  ["metadata.projectName", "Config centre project", "text"],
  ["metadata.group", "Config centre group", "text"],
  ["metadata.region", "Config centre region", "text"],
  ["metadata.configFileName", "Config item name", "text"],
];

function walk(design, at, create) {
  const parts = at.split(".");
  let obj = design;
  for (const part of parts.slice(0, -1)) {
    if (typeof obj[part] !== "object" || obj[part] === null) {
      if (!create) return [null, parts.at(-1)];
      obj[part] = {};
    }
    obj = obj[part];
  }
  return [obj, parts.at(-1)];
}

export function renderService(ctx, root) {
  root.replaceChildren();
  for (const [at, label, kind] of SERVICE_FIELDS) {
    const id = `f-${at.replaceAll(".", "-")}`;
    const [obj, key] = walk(ctx.design, at, false);
    const value = obj ? obj[key] : undefined;
    const update = (v) => {
      const [o, k] = walk(ctx.design, at, true);
      set(o, k, v);
      ctx.changed(false);
    };
    let control;
    if (kind === "interface") {
      const now = Array.isArray(value) ? value.join(",") : shown(value) || "once,session";
      control = select(label, INTERFACES, now, (v) => update(v.split(",")));
    } else if (kind === "number") {
      control = input(label, value, (v) => update(number(v)), { inputmode: "decimal" });
    } else {
      control = input(label, value, (v) => update(v === "" ? undefined : v));
    }
    control.id = id;
    control.removeAttribute("aria-label");
    root.append(h("div", { class: "field", "data-at": at }, h("label", { for: id }, label), control, msg(at, "")));
  }
}

// -- parameters ---------------------------------------------------------------------------------

function newParam(rows, prefix = "param") {
  let n = rows.length + 1;
  while (rows.some((r) => r.name === `${prefix}${n}`)) n += 1;
  return { name: `${prefix}${n}`, required: false, schema: { type: "string", description: "" }, items: null };
}

function setType(row, type) {
  // Another type: its range, enum and default no longer apply (a fresh start, keeping the words).
  const description = row.schema.description;
  row.schema = description === undefined ? { type } : { type, description };
  if (type === "object") row.properties = row.properties || [];
  else delete row.properties;
  row.items = type === "array" ? row.items || { name: "items", required: false, schema: { type: "string" }, items: null } : null;
}

function rangeCell(ctx, row, who, at) {
  const s = row.schema;
  const type = s.type;
  const cell = h("div", { class: "range" });
  const shownKeys = new Set();
  const bound = (key, text) => {
    shownKeys.add(key);
    cell.append(h("label", { class: "mini" }, text,
      input(`${text} of ${who}`, s[key], (v) => { set(s, key, number(v)); ctx.changed(false); }, { inputmode: "decimal", size: 6, "data-key": key })));
  };
  for (const [key, text] of BOUNDS[type] || []) bound(key, text);
  if (type === "string" || type === "integer" || type === "number") {
    const formats = type === "string" ? ctx.choices.stringFormats : ctx.choices.numberFormats;
    shownKeys.add("format");
    cell.append(h("label", { class: "mini" }, "format",
      select(`format of ${who}`, pairs([["", "(none)"], ...formats]), s.format ?? "", (v) => { set(s, "format", v || undefined); ctx.changed(false); }, "format")));
    shownKeys.add("enum");
    cell.append(h("label", { class: "mini" }, "enum",
      input(`enum values of ${who} (comma-separated)`, Array.isArray(s.enum) ? s.enum.map(shown).join(", ") : s.enum,
        (v) => { set(s, "enum", v.trim() === "" ? undefined : list(v).map((x) => typed(x, type))); ctx.changed(false); }, { size: 10, "data-key": "enum" })));
  }
  if (type === "string") {
    shownKeys.add("pattern");
    cell.append(h("label", { class: "mini" }, "pattern",
      input(`pattern of ${who}`, s.pattern, (v) => { set(s, "pattern", v === "" ? undefined : v); ctx.changed(false); }, { size: 10, "data-key": "pattern" })));
  }
  if (type === "object" && Array.isArray(row.properties)) {
    cell.append(h("button", { type: "button", class: "link", onclick: () => { row.properties.push(newParam(row.properties, "prop")); ctx.changed(true); } }, `Add property to ${who}`));
  }
  // Keywords of another type (from a file): shown, so that what is wrong can be seen and cleared.
  for (const key of RANGE_KEYS) {
    if (s[key] !== undefined && !shownKeys.has(key)) {
      cell.append(h("label", { class: "mini" }, key,
        input(`${key} of ${who}`, s[key], (v) => { set(s, key, typed(v, "json")); ctx.changed(false); }, { size: 6, "data-key": key })));
    }
  }
  if (!cell.childNodes.length) cell.append(h("span", { class: "none" }, "—"));
  return cell;
}

function moveButtons(ctx, list, i, who) {
  const move = (d) => { const [row] = list.splice(i, 1); list.splice(i + d, 0, row); ctx.changed(true); };
  return [
    h("button", { type: "button", class: "icon", "aria-label": `Move ${who} up`, disabled: i === 0, onclick: () => move(-1) }, "↑"),
    h("button", { type: "button", class: "icon", "aria-label": `Move ${who} down`, disabled: i === list.length - 1, onclick: () => move(1) }, "↓"),
    h("button", { type: "button", class: "icon danger", "aria-label": `Delete ${who}`, onclick: () => { list.splice(i, 1); ctx.changed(true); } }, "✕"),
  ];
}

function paramRow(ctx, tbody, row, at, depth, list, i, parent) {
  ctx.rows.set(at, row);
  const s = row.schema || (row.schema = {});
  const items = list === null;
  const who = items ? `${parent} items` : parent ? `${parent}.${row.name || `property ${i + 1}`}` : row.name || `parameter ${i + 1}`;
  const name = items
    ? h("span", { class: "items" }, "items")
    : input(`Identifier of ${who}`, row.name, (v) => { row.name = v; ctx.changed(false); });
  const types = pairs(ctx.choices.paramTypes);
  tbody.append(h("tr", { "data-at": at, class: `depth${Math.min(depth, 4)}` },
    h("td", { class: "name", "data-cell": "name" }, name),
    h("td", { "data-cell": "description" }, input(`Description of ${who}`, s.description, (v) => { set(s, "description", v === "" ? undefined : v); ctx.changed(false); })),
    h("td", { "data-cell": "type" }, select(`Data type of ${who}`, types, s.type, (v) => { setType(row, v); ctx.changed(true); })),
    h("td", { "data-cell": "range" }, rangeCell(ctx, row, who, at)),
    h("td", { class: "center", "data-cell": "required" }, items ? "" : h("input", { type: "checkbox", "aria-label": `${who} is required`, checked: !!row.required, onchange: (e) => { row.required = e.target.checked; ctx.changed(false); } })),
    h("td", { "data-cell": "default" }, items ? "" : input(`Default of ${who}`, s.default, (v) => { set(s, "default", typed(v, s.type)); ctx.changed(false); }, { size: 8 })),
    h("td", { class: "act" }, items ? "" : moveButtons(ctx, list, i, who)),
  ), msgRow(at, 7));
  (row.properties || []).forEach((child, j) => paramRow(ctx, tbody, child, `${at}.properties.${j}`, depth + 1, row.properties, j, who));
  if (row.items) paramRow(ctx, tbody, row.items, `${at}.items.0`, depth + 1, null, 0, who);
}

export function renderParams(ctx, tbody) {
  tbody.replaceChildren();
  ctx.design.params.forEach((row, i) => paramRow(ctx, tbody, row, `params.${i}`, 0, ctx.design.params, i, ""));
  if (!ctx.design.params.length) tbody.append(h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No parameters yet")));
}

export function addParam(ctx) {
  ctx.design.params.push(newParam(ctx.design.params));
  ctx.changed(true);
}

// -- request and response data ------------------------------------------------------------------

export function addData(ctx, table) {
  const rows = ctx.design[table];
  let n = rows.length + 1;
  const prefix = table === "inputs" ? "input" : "output";
  while (rows.some((r) => r.name === `${prefix}${n}`)) n += 1;
  rows.push({ name: `${prefix}${n}`, type: "text", required: false, description: "", encoding: [], compress: [], format: [], attrs: {} });
  ctx.changed(true);
}

export function renderData(ctx, table, tbody) {
  tbody.replaceChildren();
  const rows = ctx.design[table];
  const inputs = table === "inputs";
  const what = inputs ? "request data" : "response data";
  rows.forEach((row, i) => {
    const at = `${table}.${i}`;
    ctx.rows.set(at, row);
    const who = row.name || `${what} ${i + 1}`;
    const attrs = row.attrs || (row.attrs = {});
    const text = (key, label) => h("td", { "data-cell": key }, input(`${label} of ${who}`, (row[key] || []).join(", "), (v) => { row[key] = list(v); ctx.changed(false); }, { size: 8 }));
    const attr = (key, label) => h("td", { "data-cell": key }, input(`${label} of ${who}`, attrs[key], (v) => { set(attrs, key, number(v)); ctx.changed(false); }, { size: 6, inputmode: "numeric" }));
    tbody.append(h("tr", { "data-at": at },
      h("td", { class: "name", "data-cell": "name" }, input(`Name of ${who}`, row.name, (v) => { row.name = v; ctx.changed(false); })),
      h("td", { "data-cell": "type" }, select(`Type of ${who}`, pairs(ctx.choices.dataTypes), row.type, (v) => { row.type = v; ctx.changed(false); })),
      text("encoding", "Encoding"), text("format", "Format"),
      attr("sample_rate", "Sample rate"), attr("channels", "Channels"),
      text("compress", "Compress"),
      inputs ? h("td", { class: "center", "data-cell": "required" }, h("input", { type: "checkbox", "aria-label": `${who} is required`, checked: !!row.required, onchange: (e) => { row.required = e.target.checked; ctx.changed(false); } })) : null,
      h("td", { "data-cell": "description" }, input(`Description of ${who}`, row.description, (v) => { row.description = v; ctx.changed(false); })),
      h("td", { class: "act" }, moveButtons(ctx, rows, i, who)),
    ), msgRow(at, inputs ? 10 : 9));
  });
  if (!rows.length) tbody.append(h("tr", {}, h("td", { colspan: inputs ? 10 : 9, class: "empty" }, `No ${what} yet`)));
}
