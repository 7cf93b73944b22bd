// Score panel: POST /perplexity with details, each token coloured by its surprisal −log p;
// with and without the cache pointer where the model has one.

import { postJSON } from "./api.js";
import { formatNumber } from "./text.js";

// Surprisal (nats) that gets the darkest colour; ln(vocabulary size) once /info answers,
// i.e. the surprisal of a uniform guess.
let scaleMax = 10;

export function setSurprisalScale(vocabSize) {
  if (vocabSize > 1) scaleMax = Math.log(vocabSize);
}

// Whether the model has a cache pointer (/info's serving.cache): then a score also shows the
// figure without it, so the difference the text's own recent words make is visible.
let cacheServed = false;

export function setCacheServed(served) {
  cacheServed = Boolean(served);
}

export function setUpScore() {
  const button = document.getElementById("score-button");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await score(document.getElementById("score-input").value);
    } finally {
      button.disabled = false;
    }
  });
}

async function score(text) {
  const summary = document.getElementById("score-summary");
  const detail = document.getElementById("score-detail");
  detail.textContent = "";
  try {
    const [result] = (await postJSON("/perplexity", { text, details: true })).results;
    let line =
      `perplexity ${formatNumber(result.perplexity, 4)} over ${result.num_tokens} tokens` +
      ` (mean −log p ${formatNumber(result.mean_nll, 3)} nats, ${result.oov_count} OOV)`;
    summary.dataset.perplexity = result.perplexity;
    delete summary.dataset.perplexityWithoutCache;
    if (cacheServed) {
      const [plain] = (await postJSON("/perplexity", { text, cache: false })).results;
      line += `; without the cache ${formatNumber(plain.perplexity, 4)}`;
      summary.dataset.perplexityWithoutCache = plain.perplexity;
    }
    summary.textContent = line;
    renderHeatMap(result.tokens);
  } catch (error) {
    summary.textContent = `Error: ${error.message}`;
    document.getElementById("score-tokens").replaceChildren();
    document.getElementById("score-legend").hidden = true;
  }
}

function renderHeatMap(tokens) {
  const row = document.getElementById("score-tokens");
  row.replaceChildren(...tokens.map(heatChip));
  document.getElementById("score-legend-max").textContent = `≥ ${scaleMax.toFixed(1)} nats`;
  document.getElementById("score-legend").hidden = false;
}

function heatChip({ token, logprob, oov }) {
  const surprisal = -logprob;
  const chip = document.createElement("span");
  chip.className = oov ? "token heat-token oov" : "token heat-token";
  chip.tabIndex = 0;
  chip.textContent = token === "<eos>" ? "⏎" : token;
  chip.dataset.surprisal = surprisal.toFixed(3);
  chip.title = describe(token, surprisal, oov);
  paint(chip, surprisal);
  const show = () => (document.getElementById("score-detail").textContent = chip.title);
  chip.addEventListener("mouseenter", show);
  chip.addEventListener("focus", show);
  return chip;
}

function describe(token, surprisal, oov) {
  const name = token === "<eos>" ? "end of text" : `“${token}”`;
  const unk = oov ? " (out of vocabulary, read as <unk>)" : "";
  return `${name}: −log p = ${surprisal.toFixed(2)} nats, p = ${formatNumber(Math.exp(-surprisal))}${unk}`;
}

// Pale yellow (expected) to deep red (surprising).
function paint(chip, surprisal) {
  const t = Math.min(Math.max(surprisal / scaleMax, 0), 1);
  chip.style.backgroundColor = `hsl(${50 - 50 * t} 95% ${90 - 48 * t}%)`;
  chip.style.color = t > 0.55 ? "#fff" : "#1a1a1a";
}
