// The review page's keys: 1-9 give the run's model labels in order, u unsure, n next case,
// Esc closes a full image. Label keys act on the image whose card has focus (click or Tab),
// else on the case's verdict form. They press the page's own buttons: no other behaviour.
"use strict";
document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t.closest && t.closest("input, textarea, select, details")) return;
  if (e.key === "Escape") {
    const open = document.querySelector(".lightbox:target");
    if (open) open.click();
    return;
  }
  if (e.key === "n") {
    const next = document.querySelector('a[data-key="n"]');
    if (next) { e.preventDefault(); next.click(); }
    return;
  }
  const scope = (t.closest && t.closest('[data-scope="image"]')) ||
    document.querySelector('[data-scope="case"]');
  if (!scope) return;
  const button = scope.querySelector('button[data-key="' + CSS.escape(e.key) + '"]');
  if (button) { e.preventDefault(); button.click(); }
});
