// The replay page: chapters and chat lines seek the player; times show as m:ss.
const video = document.querySelector("[data-replay-player]");

const clock = (seconds) => {
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor(s / 60) % 60);
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${mm.padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
};

for (const at of document.querySelectorAll(".replay-at")) {
  at.textContent = clock(Number(at.textContent) || 0);
  at.dir = "ltr";
}

document.addEventListener("click", (event) => {
  const target = event.target.closest("[data-seek]");
  if (!target || !video) return;
  video.currentTime = Number(target.dataset.seek) || 0;
  video.play().catch(() => {});
});
