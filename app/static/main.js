// Wires the four panels and the model card together.

import { setUpFill } from "./fill.js";
import { setMaxNewTokensCap, setUpGenerate } from "./generate.js";
import { loadModelCard } from "./info.js";
import { setUpPredict } from "./predict.js";
import { setCacheServed, setSurprisalScale, setUpScore } from "./score.js";

setUpPredict();
setUpGenerate();
setUpScore();
setUpFill();

const info = await loadModelCard();
if (info) {
  setSurprisalScale(info.model.vocab_size);
  setCacheServed(info.serving.cache);
  setMaxNewTokensCap(info.limits.max_new_tokens);
}
