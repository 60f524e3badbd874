// "Notify me on this device": asks the browser's permission, subscribes this device at
// its push service with the hub's VAPID key, and tells the hub (POST /notifications/push).
const key = document.querySelector("meta[name='hirfa-vapid-key']")?.content || "";
const on = document.getElementById("push-on");
const off = document.getElementById("push-off");
const state = document.getElementById("push-state");
const csrf = document.querySelector("input[name='csrfmiddlewaretoken']")?.value || "";

function bytes(base64url) {
  const text = atob(base64url.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

async function tell(body) {
  const response = await fetch("/notifications/push", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
}

async function show() {
  const registration = await navigator.serviceWorker.ready;
  const subscription = await registration.pushManager.getSubscription();
  on.hidden = !!subscription;
  off.hidden = !subscription;
  state.textContent = Notification.permission === "denied" ? state.dataset.denied || "" : "";
}

if (key && "serviceWorker" in navigator && "PushManager" in window) {
  on.addEventListener("click", async () => {
    on.disabled = true;
    try {
      if ((await Notification.requestPermission()) !== "granted") return;
      const registration = await navigator.serviceWorker.ready;
      const subscription = await registration.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: bytes(key),
      });
      await tell(subscription.toJSON());
    } catch (error) {
      state.textContent = String(error.message || error);
    } finally {
      on.disabled = false;
      show();
    }
  });
  off.addEventListener("click", async () => {
    const registration = await navigator.serviceWorker.ready;
    const subscription = await registration.pushManager.getSubscription();
    if (subscription) {
      await tell({ endpoint: subscription.endpoint, remove: true }).catch(() => {});
      await subscription.unsubscribe();
    }
    show();
  });
  show();
}
