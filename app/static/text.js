// Joining tokens into readable text, the same rule as model/tokenizers.py join_tokens:
// Chinese without spaces, English with single spaces, none before closing punctuation.

const NO_SPACE_BEFORE = new Set([...".,;:!?%)]}'\"", "n't", "'s", "'re", "'ve", "'ll", "'d", "'m"]);
const NO_SPACE_AFTER = new Set([..."([{$#"]);

export function isCJK(char) {
  const code = char.codePointAt(0);
  return (
    (code >= 0x2e80 && code <= 0x9fff) ||
    (code >= 0xac00 && code <= 0xd7af) ||
    (code >= 0xf900 && code <= 0xfaff) ||
    (code >= 0xfe30 && code <= 0xfe4f) ||
    (code >= 0xff00 && code <= 0xffef) ||
    (code >= 0x20000 && code <= 0x2fa1f) ||
    "—…‘’“”".includes(char)
  );
}

// True when a space belongs between `previous` and `token` (both non-empty tokens).
export function needsSpace(previous, token) {
  if (!previous || !token) return false;
  return (
    !isCJK([...previous].at(-1)) &&
    !isCJK([...token][0]) &&
    !NO_SPACE_BEFORE.has(token) &&
    !NO_SPACE_AFTER.has(previous)
  );
}

// Appends a token to free text whose last word is `previousToken`.
export function appendToken(text, token, previousToken) {
  const last = previousToken ?? text.trimEnd().split(/\s+/).at(-1);
  if (!text.trim()) return token;
  const base = text.replace(/\s+$/, "");
  return needsSpace(last, token) ? `${base} ${token}` : base + token;
}

export function formatNumber(value, digits = 3) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString("en");
  return Number(value.toPrecision(digits)).toString();
}
