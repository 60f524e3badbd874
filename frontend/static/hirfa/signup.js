// Sign-up one step at a time (without this script every step shows at once and the form
// works the same): "Next" checks the step's fields first; the trades are filtered as one
// types (accents, harakat and hamza forms folded); a tap on the map picks the wilaya.

const form = document.getElementById("signup-form");
if (form) {
  const steps = [...form.querySelectorAll(".signup-step")];
  const progress = form.querySelector(".signup-progress");
  const submit = form.querySelector(".signup-submit");
  let current = 0;

  const show = (index) => {
    current = Math.max(0, Math.min(index, steps.length - 1));
    steps.forEach((step, i) => { step.hidden = i !== current; });
    if (progress) {
      progress.textContent = progress.dataset.template
        .replace("{n}", String(current + 1)).replace("{total}", String(steps.length));
    }
    submit.hidden = current !== steps.length - 1;
    form.dataset.step = String(current + 1);
  };

  const valid = (step) => {
    for (const input of step.querySelectorAll("input, select, textarea")) {
      if (!input.checkValidity()) { input.reportValidity(); return false; }
    }
    if (step.dataset.needsOne) {
      const boxes = [...step.querySelectorAll(`input[name="${step.dataset.needsOne}"]`)];
      if (boxes.length && !boxes.some((box) => box.checked)) {
        const note = step.querySelector(".signup-needs-one");
        if (note) { note.hidden = false; note.focus(); }
        return false;
      }
    }
    return true;
  };

  form.addEventListener("click", (event) => {
    const button = event.target.closest("[data-step-go]");
    if (!button) return;
    event.preventDefault();
    const go = Number(button.dataset.stepGo);
    if (go > 0 && !valid(steps[current])) return;
    show(current + go);
    const first = steps[current].querySelector("input:not([type=hidden]), select");
    if (first) first.focus();
  });

  // A form the server refused opens on the first step holding an error.
  const failed = steps.findIndex((step) => step.querySelector(".field-invalid, ul.errors"));
  steps.forEach((step) => step.querySelectorAll(".signup-nav").forEach((nav) => { nav.hidden = false; }));
  show(failed >= 0 ? failed : 0);

  // Trades by search: what one types, folded like the directory folds it.
  const fold = (text) => text.toLowerCase().normalize("NFD")
    .replace(/[\u0300-\u036f\u064b-\u0652\u0670\u0640]/g, "")
    .replace(/[أإآٱ]/g, "ا").replace(/ى/g, "ي").replace(/ة/g, "ه");
  const search = form.querySelector("#trade-search");
  if (search) {
    search.closest(".field").hidden = false;
    const names = JSON.parse(document.getElementById("trade-names")?.textContent || "{}");
    const rows = [...form.querySelectorAll("#id_trades label[for]")].map((label) => {
      const input = label.querySelector("input");
      return { input, row: label.parentElement, text: fold(`${label.textContent} ${names[input.value] || ""}`) };
    });
    const groups = [...form.querySelectorAll(".signup-trades #id_trades > div")];
    search.addEventListener("input", () => {
      const words = fold(search.value).split(/\s+/).filter(Boolean)
        .map((w) => (w.startsWith("ال") && w.length > 3 ? w.slice(2) : w));
      for (const { input, row, text } of rows) {
        row.hidden = !input.checked && !words.every((w) => text.includes(w));
      }
      for (const group of groups) {
        group.hidden = ![...group.querySelectorAll("label[for]")].some((l) => !l.parentElement.hidden);
      }
    });
  }

  // The wilaya from the map: a tap selects it in the list (whose labels start with the code).
  // The list stays the way to choose by keyboard or screen reader; the map is a picture.
  const select = form.querySelector("select[name=wilaya]");
  const picked = form.querySelector(".signup-map-picked");
  form.querySelectorAll("svg.census-map g.wilaya").forEach((shape) => {
    const pick = () => {
      const code = String(shape.dataset.code).padStart(2, "0");
      const option = [...select.options].find((o) => o.text.startsWith(`${code} `));
      if (!option) return;
      select.value = option.value;
      form.querySelectorAll("svg.census-map g.wilaya.picked").forEach((g) => g.classList.remove("picked"));
      shape.classList.add("picked");
      if (picked) picked.textContent = option.text;
    };
    shape.addEventListener("click", pick);
  });
}
