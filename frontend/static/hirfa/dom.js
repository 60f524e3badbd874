// Small DOM helpers shared by the pages' modules. Text always goes in through
// textContent or attributes, never as HTML.

/** An element with attributes (`class`, `text`, data-/aria- attributes, properties) and children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "dir" || key === "type")
      el.setAttribute(key, value === true ? "" : value);
    else el[key] = value;
  }
  el.append(...children.filter((c) => c !== null && c !== undefined));
  return el;
}

/** Bidi control characters: a name holding one could reorder the sentence around it. */
const BIDI_CONTROLS = /[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/g;

/** `value` without bidi controls, isolated (FSI … PDI) so its direction stays its own. */
export const isolate = (value) => `\u2068${String(value).replace(BIDI_CONTROLS, "")}\u2069`;

/** A function that looks `key` up in the page's strings and fills its %(name)s placeholders,
 * each text value isolated (hub/bidi.py says why); numbers have no direction to leak. */
export function translator(strings) {
  return (key, vars = {}) =>
    (strings[key] || key).replace(/%\((\w+)\)s/g, (_m, k) => {
      const value = vars[k] ?? "";
      return typeof value === "number" ? String(value) : isolate(value);
    });
}

/** The JSON a template placed in <script type="application/json" id="…">. */
export function pageData(id) {
  return JSON.parse(document.getElementById(id).textContent);
}

/** The element with this id. */
export const $ = (id) => document.getElementById(id);

/** The page's locale for Intl formatting: Algerian Arabic for the Arabic pages; Kabyle
 * where the browser has its data, else Algerian French (day first, 24 h, Latin digits),
 * whose formats Kabyle readers share. */
export const LOCALE = (() => {
  const lang = document.documentElement.lang;
  if (lang === "ar") return "ar-DZ";
  if (lang === "kab") return Intl.DateTimeFormat.supportedLocalesOf(["kab-DZ"]).length ? "kab-DZ" : "fr-DZ";
  return lang;
})();

const SVG_NS = "http://www.w3.org/2000/svg";

/** An icon of the sprite (icons.svg), decorative: its label is beside it or on its button. */
export function icon(sprite, name) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("class", "icon");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const use = document.createElementNS(SVG_NS, "use");
  use.setAttribute("href", `${sprite}#${name}`);
  svg.append(use);
  return svg;
}
