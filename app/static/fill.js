// Fill-in-the-blank panel: POST /fill-blank, one row per word, best first. The bar is the word's
// share of the whole filled lines' probability among the words shown; beside it the forward
// model's probability from the left side alone and the backward model's from the right side.

import { postJSON } from "./api.js";
import { barRow } from "./bars.js";
import { formatNumber } from "./text.js";

const TOP_K = 10;
const BLANK = "___";

export function setUpFill() {
  const button = document.getElementById("fill-button");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await fill();
    } finally {
      button.disabled = false;
    }
  });
}

async function fill() {
  const input = document.getElementById("fill-input");
  const status = document.getElementById("fill-status");
  const body = {
    text: input.value,
    top_k: TOP_K,
    backward: document.getElementById("fill-backward").checked,
  };
  status.textContent = "";
  try {
    const answer = await postJSON("/fill-blank", body);
    renderWords(answer.candidates, (word) => {
      input.value = input.value.replace(BLANK, word);
      input.focus();
    });
    status.textContent = answer.models.backward
      ? `ranked by ${answer.models.forward}; words also from ${answer.models.backward} (←)`
      : `ranked by ${answer.models.forward}; no backward model asked`;
  } catch (error) {
    document.getElementById("fill-chart").replaceChildren();
    status.textContent = `Error: ${error.message}`;
  }
}

// Each word's share of the probability of the shown lines: a softmax of their log-probabilities.
function shares(candidates) {
  const best = Math.max(...candidates.map((c) => c.line_logprob));
  const weights = candidates.map((c) => Math.exp(c.line_logprob - best));
  const total = weights.reduce((sum, w) => sum + w, 0);
  return weights.map((w) => w / total);
}

function renderWords(candidates, onChoose) {
  const chart = document.getElementById("fill-chart");
  const parts = shares(candidates);
  chart.replaceChildren(...candidates.map((c, i) => wordRow(c, parts[i], parts[0], onChoose)));
}

function wordRow(candidate, share, highest, onChoose) {
  const { token, line_logprob, left_prob, right_prob, proposed_by } = candidate;
  const right = right_prob === null ? "" : `, right side alone p = ${formatNumber(right_prob, 3)}`;
  const row = barRow({
    label: token,
    share,
    highest,
    title:
      `line log p = ${formatNumber(line_logprob, 5)}, left side alone p = ` +
      `${formatNumber(left_prob, 3)}${right}; click to fill the blank`,
    onClick: () => onChoose(token),
  });
  const sides = document.createElement("span");
  sides.className = "fill-sides";
  const rightText = right_prob === null ? "" : ` · right ${formatNumber(right_prob, 2)}`;
  const arrows = proposed_by.map((d) => (d === "forward" ? "→" : "←")).join(" ");
  sides.textContent = `left ${formatNumber(left_prob, 2)}${rightText} · from ${arrows}`;
  row.append(sides);
  return row;
}
