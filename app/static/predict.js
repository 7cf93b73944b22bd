// Next-word panel: debounced POST /predict-next, the tokenization and a bar chart of the top-k.

import { postJSON } from "./api.js";
import { barRow } from "./bars.js";
import { appendToken, formatNumber } from "./text.js";

const DEBOUNCE_MS = 250;
const TOP_K = 10;

export function setUpPredict() {
  const input = document.getElementById("predict-input");
  const status = document.getElementById("predict-status");
  let timer = null;
  let inFlight = null;
  let lastTokens = [];

  async function predict() {
    inFlight?.abort();
    inFlight = new AbortController();
    const { signal } = inFlight;
    try {
      const answer = await postJSON("/predict-next", { text: input.value, top_k: TOP_K }, signal);
      lastTokens = answer.tokens.map((t) => t.token);
      renderTokens(answer.tokens);
      renderChart(answer.candidates, chooseCandidate);
      status.textContent = "";
    } catch (error) {
      if (error.name !== "AbortError") status.textContent = `Error: ${error.message}`;
    }
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(predict, DEBOUNCE_MS);
  }

  function chooseCandidate({ token, end_of_text }) {
    if (end_of_text) return;
    input.value = appendToken(input.value, token, lastTokens.at(-1));
    input.focus();
    predict();
  }

  input.addEventListener("input", schedule);
  predict();
}

function renderTokens(tokens) {
  const row = document.getElementById("predict-tokens");
  row.replaceChildren(...tokens.map(tokenChip));
  if (tokens.length === 0) row.textContent = "(empty: predicting from the start of a text)";
}

function tokenChip({ token, oov }) {
  const chip = document.createElement("span");
  chip.className = oov ? "token oov" : "token";
  chip.textContent = token;
  if (oov) chip.title = "out of vocabulary: the model reads <unk>";
  return chip;
}

function renderChart(candidates, onChoose) {
  const chart = document.getElementById("predict-chart");
  const highest = Math.max(...candidates.map((c) => c.prob), 1e-12);
  chart.replaceChildren(...candidates.map((c) => candidateRow(c, highest, onChoose)));
}

function candidateRow(candidate, highest, onChoose) {
  const { token, prob, logprob, end_of_text } = candidate;
  return barRow({
    label: end_of_text ? "⏎ end" : token,
    labelClass: end_of_text ? "bar-label eos" : "bar-label",
    share: prob,
    highest,
    title: end_of_text
      ? `end of text: p = ${formatNumber(prob, 4)}`
      : `p = ${formatNumber(prob, 4)}, log p = ${formatNumber(logprob, 4)}; click to append`,
    onClick: () => onChoose(candidate),
  });
}
