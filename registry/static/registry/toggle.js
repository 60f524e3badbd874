// Follow an artisan, keep a piece: the button toggles in place (aria-pressed, its label,
// the count), without reloading the page. Without this script the same form posts and the
// page comes back with the new state; when the answer is not the expected JSON (logged
// out meanwhile, a proxy's page) the form is posted that way too.

const show = (box, message) => {
  const note = box.querySelector(".toggle-error");
  if (!note) return;
  note.textContent = message;
  note.hidden = !message;
};

const toggle = async (form) => {
  const box = form.closest(".follow-box, .favourite-box");
  const button = form.querySelector("button[type=submit]");
  if (!box || !button || button.getAttribute("aria-busy") === "true") return;
  button.setAttribute("aria-busy", "true");
  let response;
  try {
    response = await fetch(form.action, {
      method: "POST", body: new FormData(form), credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
  } catch {
    button.removeAttribute("aria-busy");
    show(box, box.dataset.offline || "");
    return;
  }
  button.removeAttribute("aria-busy");
  if (!(response.headers.get("Content-Type") || "").startsWith("application/json")) {
    form.submit();
    return;
  }
  const answer = await response.json();
  if (!response.ok) {
    show(box, answer.message || box.dataset.offline || "");
    return;
  }
  show(box, "");
  button.setAttribute("aria-pressed", String(answer.mine));
  button.querySelector(".toggle-label").textContent = answer.label;
  form.querySelector("[data-toggle-next]").value = answer.mine ? "0" : "1";
  const count = box.querySelector("[data-count]");
  if (count) {
    count.dataset.count = String(answer.count);
    count.textContent = answer.count_text;
  }
};

document.addEventListener("submit", (event) => {
  const form = event.target.closest?.(".toggle-form");
  if (!form) return;
  event.preventDefault();
  toggle(form);
});
