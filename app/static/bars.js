// One row of a bar chart, shared by the next-word and fill-in-the-blank panels: a button with
// a label, a bar whose width is `share` relative to the chart's `highest`, and the share in %.

export function barRow({ label, labelClass = "bar-label", share, highest, title, onClick }) {
  const row = document.createElement("button");
  row.type = "button";
  row.className = "bar-row";
  row.setAttribute("role", "listitem");
  row.title = title;
  row.addEventListener("click", onClick);

  const name = document.createElement("span");
  name.className = labelClass;
  name.textContent = label;

  const track = document.createElement("span");
  track.className = "bar-track";
  const bar = document.createElement("span");
  bar.className = "bar";
  bar.style.width = `${(100 * share) / highest}%`;
  track.append(bar);

  const value = document.createElement("span");
  value.className = "bar-value";
  value.textContent = `${(100 * share).toFixed(1)}%`;

  row.append(name, track, value);
  return row;
}
