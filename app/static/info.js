// The model card from GET /info, shown in the corner: a one-line summary and every field.

import { getJSON } from "./api.js";
import { formatNumber } from "./text.js";

export async function loadModelCard() {
  const summary = document.getElementById("model-summary");
  try {
    const info = await getJSON("/info");
    summary.textContent = summarize(info);
    renderFields(info);
    return info;
  } catch (error) {
    summary.textContent = `model: unavailable (${error.message})`;
    return null;
  }
}

function summarize({ model = {}, corpus = {}, training = {} }) {
  const parts = [
    model.cell?.toUpperCase(),
    model.num_layers && model.hidden_size ? `${model.num_layers}×${model.hidden_size}` : null,
    model.vocab_size ? `vocab ${formatNumber(model.vocab_size)}` : null,
    corpus.name,
    training.test_ppl ? `test ppl ${formatNumber(training.test_ppl, 4)}` : null,
  ].filter(Boolean);
  return parts.length ? `model: ${parts.join(" · ")}` : "model";
}

function renderFields(info) {
  const list = document.getElementById("model-fields");
  list.replaceChildren();
  for (const [key, value] of flatten(info)) {
    const term = document.createElement("dt");
    term.textContent = key;
    const description = document.createElement("dd");
    description.textContent = shortened(value);
    description.title = value;
    list.append(term, description);
  }
}

// [dotted key, printable value] pairs of a nested object.
function flatten(value, prefix = "") {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return [[prefix, printable(value)]];
  }
  return Object.entries(value).flatMap(([key, inner]) =>
    flatten(inner, prefix ? `${prefix}.${key}` : key),
  );
}

// Hashes are long; their first 16 digits identify them well enough on screen.
function shortened(value) {
  return /^[0-9a-f]{32,}$/.test(value) ? `${value.slice(0, 16)}…` : value;
}

function printable(value) {
  if (typeof value === "number") return formatNumber(value, 5);
  if (Array.isArray(value)) return value.map(printable).join(", ");
  return String(value);
}
