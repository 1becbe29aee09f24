// The context as a readable JSON tree: objects and arrays fold (<details>),
// large ones start folded, long strings show their start and fold the rest.
// Keys keep the server's order; values are text nodes, never HTML.
type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const FOLD_ENTRIES = 20; // containers with more entries start folded
const FOLD_DEPTH = 3; // and so do containers nested deeper than this
const LONG_STRING = 160;

function leaf(value: Json): HTMLElement {
  const span = document.createElement("span");
  if (typeof value === "string") {
    span.className = "j-str";
    if (value.length > LONG_STRING) {
      const d = document.createElement("details");
      const s = document.createElement("summary");
      s.textContent = `${JSON.stringify(value.slice(0, LONG_STRING))}… (${value.length} characters)`;
      const full = document.createElement("span");
      full.className = "j-long";
      full.textContent = JSON.stringify(value);
      d.append(s, full);
      span.append(d);
    } else {
      span.textContent = JSON.stringify(value);
    }
  } else {
    span.className = value === null ? "j-null" : typeof value === "number" ? "j-num" : "j-bool";
    span.textContent = String(value);
  }
  return span;
}

function node(key: string | undefined, value: Json, depth: number): HTMLElement {
  const li = document.createElement("li");
  if (key !== undefined) {
    const k = document.createElement("span");
    k.className = "j-key";
    k.textContent = `${key}: `;
    li.append(k);
  }
  if (value === null || typeof value !== "object") {
    li.append(leaf(value));
    return li;
  }
  const entries: [string | undefined, Json][] = Array.isArray(value) ? value.map((v) => [undefined, v]) : Object.entries(value);
  const details = document.createElement("details");
  details.open = entries.length <= FOLD_ENTRIES && depth < FOLD_DEPTH;
  const summary = document.createElement("summary");
  summary.textContent = Array.isArray(value) ? `[ ${entries.length} items ]` : `{ ${entries.length} keys }`;
  const ul = document.createElement("ul");
  for (const [k, v] of entries) ul.append(node(k, v, depth + 1));
  details.append(summary, ul);
  li.append(details);
  return li;
}

export function renderJson(value: { [key: string]: Json } | Json): HTMLElement {
  const root = document.createElement("ul");
  root.className = "json";
  if (value && typeof value === "object" && !Array.isArray(value)) {
    const entries = Object.entries(value);
    if (entries.length === 0) {
      const li = document.createElement("li");
      li.textContent = "(empty)";
      root.append(li);
    }
    for (const [k, v] of entries) root.append(node(k, v, 1));
  } else {
    root.append(node(undefined, value as Json, 0));
  }
  return root;
}
