// Behaviour shared by every page. No inline scripts or handlers: the CSP is script-src 'self'.

// Send the session's CSRF token with every htmx request that changes state.
document.addEventListener("htmx:configRequest", (event) => {
  const token = document.body.dataset.csrf;
  if (token) event.detail.headers["X-CSRF-Token"] = token;
});

// A select marked data-autosubmit (the period picker, the report breakdown) submits its
// form when its value changes; without JavaScript the form has a button instead.
document.addEventListener("change", (event) => {
  const field = event.target;
  if (!(field instanceof HTMLSelectElement) || !field.hasAttribute("data-autosubmit") || !field.form) return;
  if (typeof field.form.requestSubmit === "function") field.form.requestSubmit();
  else field.form.submit();
});

// After a form comes back with errors, put the keyboard on the first field to correct.
document.addEventListener("DOMContentLoaded", () => {
  const invalid = document.querySelector(".field.invalid input, .field.invalid select, .field.invalid textarea");
  if (invalid) invalid.focus();
});

// A session that ended while the page was open: htmx would follow the redirect to the
// sign-in page and paste that page into the table. Go there as a whole page instead,
// and sign-in brings the user back (its `next` is the address htmx asked for).
document.addEventListener("htmx:beforeSwap", (event) => {
  const answered = event.detail.xhr && event.detail.xhr.responseURL;
  if (answered && new URL(answered).pathname === "/login") {
    event.detail.shouldSwap = false;
    window.location.assign(answered);
  }
});
