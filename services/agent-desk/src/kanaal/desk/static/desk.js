// Refreshes the queue overview in place every 5 seconds (no full reload, no framework).
"use strict";
(function () {
  const box = document.querySelector("[data-refresh]");
  if (!box) return;
  async function refresh() {
    try {
      const response = await fetch(box.dataset.refresh, { credentials: "same-origin" });
      if (response.status === 401) { window.location.assign("/login"); return; }
      if (response.ok) box.innerHTML = await response.text();
    } catch (_) { /* the next round tries again */ }
  }
  setInterval(refresh, 5000);
})();
