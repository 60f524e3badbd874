// Suggestions as one types in the directory's search box: trades, wilayas and artisans
// the words may mean (GET /artisans/suggest). Arrow keys move, Enter follows, Escape closes.
// Without JavaScript the box is a plain search form.
import { h } from "../hirfa/dom.js";

const input = document.querySelector("input[data-suggest]");
const list = document.getElementById("suggestions");
const KIND = { trade: "◆", wilaya: "⌖", artisan: "" };
let timer = 0;
let controller = null;
let active = -1;

function close() {
  list.hidden = true;
  list.replaceChildren();
  input.setAttribute("aria-expanded", "false");
  active = -1;
}

function select(index) {
  const items = [...list.children];
  items.forEach((li, i) => li.setAttribute("aria-selected", i === index ? "true" : "false"));
  active = index;
}

async function suggest() {
  const q = input.value.trim();
  if (q.length < 2) return close();
  controller?.abort();
  controller = new AbortController();
  try {
    const response = await fetch(`${input.dataset.suggest}?q=${encodeURIComponent(q)}`, { signal: controller.signal });
    if (!response.ok) return close();
    const { items } = await response.json();
    if (!items.length) return close();
    list.replaceChildren(
      ...items.map((item, i) =>
        h("li", { role: "option", id: `suggestion-${i}`, "aria-selected": "false", "data-kind": item.kind },
          h("a", { href: item.url, dir: "auto" }, item.label, KIND[item.kind] ? h("span", { class: "kind", "aria-hidden": "true", text: KIND[item.kind] }) : null)),
      ),
    );
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    active = -1;
  } catch (error) {
    if (error.name !== "AbortError") close();
  }
}

if (input && list) {
  input.setAttribute("role", "combobox");
  input.setAttribute("aria-expanded", "false");
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(suggest, 180);
  });
  input.addEventListener("keydown", (event) => {
    const count = list.children.length;
    if (list.hidden || !count) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      select((active + (event.key === "ArrowDown" ? 1 : count - 1)) % count);
    } else if (event.key === "Enter" && active >= 0) {
      event.preventDefault();
      list.children[active].querySelector("a").click();
    } else if (event.key === "Escape") {
      close();
    }
  });
  document.addEventListener("click", (event) => {
    if (!list.contains(event.target) && event.target !== input) close();
  });
}
