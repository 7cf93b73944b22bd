// Generate panel: sampling controls and a token-by-token view of POST /generate's SSE stream.

import { ApiError, postEventStream } from "./api.js";
import { formatNumber } from "./text.js";

const SLIDERS = [
  { id: "temperature", format: (v) => (v === 0 ? "0 (greedy)" : v.toFixed(2)) },
  { id: "top-k", format: (v) => (v === 0 ? "off" : String(v)) },
  { id: "top-p", format: (v) => v.toFixed(2) },
  { id: "max-new-tokens", format: (v) => String(v) },
  { id: "repetition-penalty", format: (v) => v.toFixed(2) },
];

export function setUpGenerate() {
  for (const slider of SLIDERS) bindSlider(slider);
  const button = document.getElementById("generate-button");
  const stop = document.getElementById("stop-button");
  let running = null;

  button.addEventListener("click", async () => {
    running = new AbortController();
    button.disabled = true;
    stop.disabled = false;
    try {
      await runGeneration(running.signal);
    } finally {
      button.disabled = false;
      stop.disabled = true;
    }
  });
  stop.addEventListener("click", () => running?.abort());
}

// Caps the max-new-tokens slider at the service's configured limit (from /info).
export function setMaxNewTokensCap(cap) {
  const slider = document.getElementById("max-new-tokens");
  if (!Number.isInteger(cap) || cap < 1) return;
  slider.max = String(cap);
  if (Number(slider.value) > cap) slider.value = String(cap);
  slider.dispatchEvent(new Event("input"));
}

function bindSlider({ id, format }) {
  const slider = document.getElementById(id);
  const output = document.getElementById(`${id}-value`);
  const show = () => (output.textContent = format(Number(slider.value)));
  slider.addEventListener("input", show);
  show();
}

function readRequest() {
  const number = (id) => Number(document.getElementById(id).value);
  const seedText = document.getElementById("seed").value.trim();
  return {
    prompt: document.getElementById("generate-prompt").value,
    max_new_tokens: number("max-new-tokens"),
    temperature: number("temperature"),
    top_k: number("top-k") === 0 ? null : number("top-k"),
    top_p: number("top-p"),
    repetition_penalty: number("repetition-penalty"),
    seed: seedText === "" ? null : Number(seedText),
    ignore_eos: document.getElementById("ignore-eos").checked,
    stream: true,
  };
}

async function runGeneration(signal) {
  const request = readRequest();
  const view = new StreamView(request.prompt);
  const started = performance.now();
  let final = null;
  view.status("Generating…");
  try {
    for await (const event of postEventStream("/generate", request, signal)) {
      if (event.error) throw new ApiError(event.error, event.error_type, 200);
      if (event.finish_reason) final = event;
      else view.addToken(event);
    }
    view.finish(final, (performance.now() - started) / 1000);
  } catch (error) {
    if (error.name === "AbortError") view.status(`Stopped after ${view.count} tokens.`);
    else view.status(`Error (${error.errorType || "network"}): ${error.message}`);
  }
}

// The output area while a stream arrives: the prompt, then one span per generated token.
class StreamView {
  constructor(prompt) {
    this.output = document.getElementById("generate-output");
    this.statusLine = document.getElementById("generate-status");
    this.count = 0;
    const promptSpan = document.createElement("span");
    promptSpan.className = "prompt";
    promptSpan.textContent = prompt.replace(/\s+$/, "");
    this.output.replaceChildren(promptSpan);
  }

  // `text` is what the token adds to the text, with the space before it if any.
  addToken({ id, text, logprob }) {
    this.count += 1;
    const span = document.createElement("span");
    span.className = "gen-token";
    span.textContent = text;
    span.title = `id ${id}, log p = ${formatNumber(logprob, 4)}`;
    this.output.append(span);
    this.output.scrollTop = this.output.scrollHeight;
  }

  finish(final, seconds) {
    if (!final) {
      this.status("The stream ended without a final event.");
      return;
    }
    const generated = final.usage?.generated_tokens ?? this.count;
    const rate = generated / Math.max(seconds, 1e-6);
    const seed = final.seed ?? "–";
    this.statusLine.textContent =
      `finish: ${final.finish_reason} · ${generated} tokens in ${seconds.toFixed(2)} s · ` +
      `${formatNumber(rate)} tokens/s · seed ${seed}`;
    this.statusLine.dataset.finishReason = final.finish_reason;
  }

  status(text) {
    this.statusLine.textContent = text;
    delete this.statusLine.dataset.finishReason;
  }
}
