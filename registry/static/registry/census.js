// The census map on a phone: no hover shows a wilaya's title, so a tap (or a click)
// writes it under the map and outlines the wilaya.
const map = document.querySelector(".census-map");
const said = document.getElementById("census-picked");
if (map && said) {
  map.addEventListener("click", (event) => {
    const wilaya = event.target.closest("g.wilaya");
    if (!wilaya) return;
    map.querySelector(".picked")?.classList.remove("picked");
    wilaya.classList.add("picked");
    said.textContent = wilaya.querySelector("title")?.textContent || "";
  });
}
