// Calls to the nextword HTTP API. Every error body is {"error", "error_type"}.
//
// A server started with NEXTWORD_API_KEY answers 401 without the key: the page then asks for
// it once and keeps it in sessionStorage, so it lasts as long as the tab and no longer.

const KEY_ITEM = "nextword-api-key";

export class ApiError extends Error {
  constructor(message, errorType, status) {
    super(message);
    this.errorType = errorType;
    this.status = status;
  }
}

async function errorFrom(response) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    // Not JSON (a proxy page, say): fall back to the status line.
  }
  const message = body.error || `${response.status} ${response.statusText}`;
  return new ApiError(message, body.error_type || "http_error", response.status);
}

// fetch with the tab's API key; on a 401 asks for the key (unless another request of the
// page already got a newer one) and tries once more.
async function send(path, init) {
  const used = sessionStorage.getItem(KEY_ITEM);
  const response = await fetch(path, withKey(init, used));
  if (response.status !== 401) return response;
  if (sessionStorage.getItem(KEY_ITEM) === used) {
    const key = window.prompt("This server needs an API key (NEXTWORD_API_KEY):");
    if (!key) return response;
    sessionStorage.setItem(KEY_ITEM, key.trim());
  }
  return fetch(path, withKey(init, sessionStorage.getItem(KEY_ITEM)));
}

function withKey(init, key) {
  if (!key) return init;
  return { ...init, headers: { ...init.headers, Authorization: `Bearer ${key}` } };
}

export async function getJSON(path, signal) {
  const response = await send(path, { signal });
  if (!response.ok) throw await errorFrom(response);
  return response.json();
}

export async function postJSON(path, body, signal) {
  const response = await send(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
  if (!response.ok) throw await errorFrom(response);
  return response.json();
}

// Yields the parsed JSON of each `data:` event of a POSTed text/event-stream until `[DONE]`.
// EventSource cannot POST, so the body is read by hand.
export async function* postEventStream(path, body, signal) {
  const response = await send(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify(body),
    signal,
  });
  if (!response.ok) throw await errorFrom(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += value;
    const events = buffered.split(/\r?\n\r?\n/);
    buffered = events.pop();
    for (const event of events) {
      const data = eventData(event);
      if (data === null) continue;
      if (data === "[DONE]") return;
      yield JSON.parse(data);
    }
  }
}

// The joined `data:` lines of one SSE event, or null for comments and keep-alives.
function eventData(event) {
  const lines = event.split(/\r?\n/).filter((line) => line.startsWith("data:"));
  if (lines.length === 0) return null;
  return lines.map((line) => line.slice(5).replace(/^ /, "")).join("\n");
}
