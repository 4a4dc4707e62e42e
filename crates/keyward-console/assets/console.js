// Keyward console: small conveniences on top of pages that work without script.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Copy buttons (hidden until this script runs, so they never appear without it).
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.hidden = false;
    button.addEventListener("click", async () => {
      const text = document.getElementById(button.dataset.copy).textContent.trim();
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "Copied";
      } catch {
        const range = document.createRange();
        range.selectNodeContents(document.getElementById(button.dataset.copy));
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        button.textContent = "Selected — press Ctrl+C";
      }
    });
  }
  // "I have stored it" must be ticked before Continue (the form's `required` does the same
  // without script).
  for (const button of document.querySelectorAll("[data-requires]")) {
    const box = document.getElementById(button.dataset.requires);
    const sync = () => { button.disabled = !box.checked; };
    box.addEventListener("change", sync);
    sync();
  }
});
