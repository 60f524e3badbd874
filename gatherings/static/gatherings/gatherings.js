// Gatherings pages: remember the browser's time zone (the server shows times in it)
// and drive the recurrence picker of the moderators' form with a live preview.

const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
if (zone && !document.cookie.split("; ").includes(`hirfa_tz=${zone}`)) {
  document.cookie = `hirfa_tz=${encodeURIComponent(zone)}; path=/; max-age=31536000; samesite=lax`;
}

const DAYS = ["SU", "MO", "TU", "WE", "TH", "FR", "SA"];

function csrf() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

function buildRule(picker, start) {
  const freq = picker.querySelector("[data-freq]").value;
  if (!freq) return "";
  const parts = [];
  const interval = parseInt(picker.querySelector("[data-interval]").value, 10) || 1;
  const count = parseInt(picker.querySelector("[data-count]").value, 10);
  const until = picker.querySelector("[data-until]").value;
  if (freq === "MONTHLY-NTH") {
    const day = new Date(start);
    const nth = Math.floor((day.getDate() - 1) / 7) + 1;
    parts.push("FREQ=MONTHLY", `BYDAY=${nth > 4 ? -1 : nth}${DAYS[day.getDay()]}`);
  } else {
    parts.push(`FREQ=${freq}`);
  }
  if (interval > 1) parts.splice(1, 0, `INTERVAL=${interval}`);
  if (until) parts.push(`UNTIL=${until.replaceAll("-", "")}`);
  else parts.push(`COUNT=${count || 1}`);
  return parts.join(";");
}

// Set the picker from a rule it could have written (else it stays on "typed rule").
function readRule(picker, rule) {
  const parts = Object.fromEntries(
    rule.split(";").filter(Boolean).map((p) => p.split("=")).map(([k, v]) => [k.toUpperCase(), v || ""]),
  );
  const known = new Set(["FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY"]);
  if (!parts.FREQ || Object.keys(parts).some((k) => !known.has(k))) return;
  let freq = parts.FREQ;
  if (freq === "MONTHLY" && parts.BYDAY) freq = "MONTHLY-NTH";
  else if (parts.BYDAY && (freq !== "WEEKLY" || parts.BYDAY.includes(","))) return;
  const select = picker.querySelector("[data-freq]");
  if (![...select.options].some((o) => o.value === freq)) return;
  select.value = freq;
  picker.querySelector("[data-interval]").value = parts.INTERVAL || "1";
  if (parts.COUNT) picker.querySelector("[data-count]").value = parts.COUNT;
  if (/^\d{8}/.test(parts.UNTIL || "")) {
    const u = parts.UNTIL;
    picker.querySelector("[data-until]").value = `${u.slice(0, 4)}-${u.slice(4, 6)}-${u.slice(6, 8)}`;
  }
}

function dateFormat(tzName) {
  // Algerian Arabic writes Latin digits, as the server's pages do.
  const lang = document.documentElement.lang === "ar" ? "ar-DZ" : document.documentElement.lang || undefined;
  try {
    return new Intl.DateTimeFormat(lang, { dateStyle: "full", timeStyle: "short", hourCycle: "h23", timeZone: tzName });
  } catch {
    return new Intl.DateTimeFormat(lang, { dateStyle: "full", timeStyle: "short", hourCycle: "h23", timeZone: "Africa/Algiers" });
  }
}

function setupPicker(form) {
  const picker = form.querySelector(".recurrence-picker");
  if (!picker) return;
  const rrule = form.querySelector("[data-rrule]");
  const start = form.querySelector("[name=start]");
  const tz = form.querySelector("[name=tz]");
  const duration = form.querySelector("[name=duration_minutes]");
  const list = picker.querySelector("[data-preview]");
  const error = picker.querySelector("[data-preview-error]");
  let timer = null;
  if (rrule.value) readRule(picker, rrule.value);

  async function preview() {
    list.replaceChildren();
    error.hidden = true;
    if (!start.value) return;
    const body = {
      start: start.value, tz: tz.value || "Africa/Algiers", rrule: rrule.value,
      duration_minutes: parseInt(duration.value, 10) || 60, count: 5,
    };
    if (form.dataset.gathering) body.gathering_id = parseInt(form.dataset.gathering, 10);
    const fmt = dateFormat(body.tz);
    const response = await fetch(picker.dataset.previewUrl, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
      body: JSON.stringify(body),
    });
    const data = await response.json();
    if (!response.ok) {
      error.textContent = data.message || "";
      error.hidden = false;
      return;
    }
    for (const iso of data.starts) {
      const li = document.createElement("li");
      li.textContent = fmt.format(new Date(iso));
      list.append(li);
    }
    if (data.total > data.starts.length) {
      const li = document.createElement("li");
      li.textContent = `… (${data.total})`;
      list.append(li);
    }
  }

  function changed(fromPicker) {
    // Start changes re-derive the rule only when the picker made it (keeps a typed rule).
    if (fromPicker && (picker.contains(document.activeElement) || picker.querySelector("[data-freq]").value)) {
      rrule.value = buildRule(picker, start.value);
    }
    clearTimeout(timer);
    timer = setTimeout(preview, 300);
  }
  picker.addEventListener("input", () => changed(true));
  for (const el of [start, tz, duration, rrule]) el.addEventListener("input", () => changed(el !== rrule));
  // On a slow link the form comes before this module: a repeat chosen meanwhile is the rule.
  changed(!rrule.value && picker.querySelector("[data-freq]").value !== "");
}

const form = document.getElementById("gathering-form");
if (form) setupPicker(form);

// The presenters of a masterclass, found among the members as one types (without this
// script the form takes their user names, typed and separated by commas): the field keeps
// the user names; the picker shows them as chips and offers the matching members.
const presenterPicker = document.querySelector("[data-presenter-picker]");
const presentersInput = document.getElementById("id_presenters");
if (presenterPicker && presentersInput) {
  const chosen = presenterPicker.querySelector("[data-chosen]");
  const search = presenterPicker.querySelector("[data-search]");
  const suggestions = presenterPicker.querySelector("[data-suggestions]");
  const none = presenterPicker.querySelector("[data-none]");
  const removeLabel = presenterPicker.querySelector("[data-remove-label]").textContent;
  const max = parseInt(presenterPicker.dataset.max, 10) || 2;
  const names = new Map(); // user name -> name shown
  const picked = () => presentersInput.value.split(",").map((n) => n.trim()).filter(Boolean);

  const render = () => {
    const list = picked();
    chosen.replaceChildren(...list.map((username) => {
      const item = document.createElement("li");
      const label = document.createElement("bdi");
      label.textContent = names.get(username) || username;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "btn btn-small btn-quiet";
      remove.textContent = "×";
      remove.setAttribute("aria-label", `${removeLabel}: ${names.get(username) || username}`);
      remove.addEventListener("click", () => {
        presentersInput.value = picked().filter((n) => n !== username).join(", ");
        render();
        search.focus();
      });
      item.append(label, remove);
      item.dataset.username = username;
      return item;
    }));
    search.disabled = list.length >= max;
  };

  let timer = null;
  let asked = 0;
  const find = async () => {
    const query = search.value.trim();
    const ticket = ++asked;
    if (query.length < 2) {
      suggestions.replaceChildren();
      none.hidden = true;
      return;
    }
    let members = [];
    try {
      const response = await fetch(`${presenterPicker.dataset.searchUrl}?q=${encodeURIComponent(query)}`, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (response.ok) members = (await response.json()).members || [];
    } catch {
      return; // offline: the typed field still works
    }
    if (ticket !== asked) return; // a newer search answered first
    const list = picked();
    const offered = members.filter((m) => !list.includes(m.username));
    suggestions.replaceChildren(...offered.map((member) => {
      names.set(member.username, member.name);
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "btn btn-small";
      button.dataset.username = member.username;
      const name = document.createElement("bdi");
      name.textContent = member.name;
      const handle = document.createElement("bdi");
      handle.className = "hint";
      handle.textContent = ` @${member.username}`;
      button.append(name, handle);
      button.addEventListener("click", () => {
        if (picked().length >= max) return;
        presentersInput.value = [...picked(), member.username].join(", ");
        search.value = "";
        suggestions.replaceChildren();
        render();
        if (!search.disabled) search.focus();
      });
      item.append(button);
      return item;
    }));
    none.hidden = offered.length > 0;
  };
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(find, 250);
  });
  // The typed field gives way to the picker; its label now names the search box.
  presentersInput.hidden = true;
  const label = presentersInput.closest(".field")?.querySelector(`label[for="${presentersInput.id}"]`);
  if (label) {
    label.textContent = presenterPicker.querySelector("[data-label]").textContent;
    label.setAttribute("for", search.id);
  }
  presenterPicker.hidden = false;
  render();
}
