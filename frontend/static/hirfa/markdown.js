// Light markdown for message text: **bold**, _italic_, `code` and http(s) links.
// Guarantee: user text only ever reaches the page through textContent and
// validated href attributes, never as markup; anything else stays text.

const TOKEN =
  /`([^`\n]+)`|\*\*(?=\S)([^*\n]*?\S)\*\*|(^|[\s(["'«])_(?=\S)([^_\n]*?\S)_(?=$|[\s).,;:!?"'»])|(https?:\/\/[^\s<>"']*[^\s<>"'.,;:!?)\]])/g;

/** The URL when it is a well-formed http(s) link, else null. */
export function safeUrl(raw) {
  try {
    const url = new URL(raw);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

function appendInline(parent, text, depth) {
  let last = 0;
  TOKEN.lastIndex = 0;
  const matches = [...text.matchAll(TOKEN)];
  for (const m of matches) {
    const [whole, code, bold, pre, italic, link] = m;
    let start = m.index;
    if (pre) start += pre.length;
    if (start > last) parent.append(text.slice(last, start));
    if (code !== undefined) {
      const el = document.createElement("code");
      el.textContent = code;
      parent.append(el);
    } else if (bold !== undefined) {
      const el = document.createElement("strong");
      depth < 3 ? appendInline(el, bold, depth + 1) : (el.textContent = bold);
      parent.append(el);
    } else if (italic !== undefined) {
      const el = document.createElement("em");
      depth < 3 ? appendInline(el, italic, depth + 1) : (el.textContent = italic);
      parent.append(el);
    } else if (link !== undefined) {
      const href = safeUrl(link);
      if (href) {
        const a = document.createElement("a");
        a.href = href;
        a.textContent = link;
        a.rel = "noopener noreferrer nofollow ugc";
        a.target = "_blank";
        parent.append(a);
      } else {
        parent.append(link);
      }
    }
    last = m.index + whole.length;
  }
  if (last < text.length) parent.append(text.slice(last));
}

/** A fragment for `text`; newlines are kept (the message body is white-space: pre-wrap). */
export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  appendInline(fragment, String(text ?? ""), 0);
  return fragment;
}
