// One-tap sharing of a storefront or a product: the phone's own share sheet (Web Share API)
// where there is one, else the link copied to the clipboard; without JavaScript (or
// clipboard), the link stays in a field to select.
const box = document.querySelector(".share-box");
if (box) {
  const button = box.querySelector(".share-button");
  const field = box.querySelector("input.share");
  const status = box.querySelector(".share-status");
  const url = box.dataset.shareUrl;
  button.hidden = false;
  button.addEventListener("click", async () => {
    if (navigator.share) {
      try {
        await navigator.share({ title: box.dataset.shareTitle, url });
        return;
      } catch (error) {
        if (error.name === "AbortError") return;
      }
    }
    try {
      await navigator.clipboard.writeText(url);
      status.textContent = box.dataset.copied;
      box.dataset.state = "copied";
    } catch {
      field.focus();
      field.select();
    }
  });
}
