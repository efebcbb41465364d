// The planweave web UI: a hash router over its views, and the token field in the header.
//
// Each view is mount(container, params) -> cleanup; the cleanup stops its polling and streams
// when the route changes.

import { getToken, setToken } from "./api.js";
import { h, replace } from "./dom.js";
import { notify } from "./notice.js";
import { mountDeadLetters } from "./views/dlq.js";
import { mountJob } from "./views/job.js";
import { mountJobs } from "./views/jobs.js";
import { mountNewJob } from "./views/new.js";
import { mountSession } from "./views/session.js";
import { mountSessions } from "./views/sessions.js";

const routes = [
  { pattern: /^\/?$/, nav: "jobs", mount: mountJobs },
  { pattern: /^\/jobs\/?$/, nav: "jobs", mount: mountJobs },
  { pattern: /^\/jobs\/([^/]+)\/?$/, nav: "jobs", mount: mountJob, params: (m) => ({ jobId: decodeURIComponent(m[1]) }) },
  { pattern: /^\/new\/?$/, nav: "new", mount: mountNewJob },
  { pattern: /^\/dlq\/?$/, nav: "dlq", mount: mountDeadLetters },
  { pattern: /^\/sessions\/?$/, nav: "sessions", mount: mountSessions },
  { pattern: /^\/sessions\/([^/]+)\/?$/, nav: "sessions", mount: mountSession, params: (m) => ({ sessionId: decodeURIComponent(m[1]) }) },
];

let cleanup = null;

function route() {
  const view = document.getElementById("view");
  const path = (location.hash || "#/").replace(/^#/, "").split("?")[0];
  if (cleanup) {
    try {
      cleanup();
    } catch (exc) {
      console.error(exc);
    }
    cleanup = null;
  }
  notify(null);
  replace(view);
  for (const r of routes) {
    const m = r.pattern.exec(path);
    if (!m) continue;
    for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === r.nav);
    cleanup = r.mount(view, r.params ? r.params(m) : {}) || null;
    return;
  }
  replace(view, h("section", { class: "card empty" }, h("h1", {}, "Not found"), h("p", {}, "No page here. "), h("a", { href: "#/" }, "Back to the jobs")));
}

function showTokenState() {
  const state = document.getElementById("token-state");
  const has = Boolean(getToken());
  state.textContent = has ? "token saved" : "no token";
  state.classList.toggle("set", has);
}

function initToken() {
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = input.value.trim();
    if (!value) return;
    setToken(value);
    input.value = "";
    notify("Token saved.", "info");
    route();
  });
  document.getElementById("token-clear").addEventListener("click", () => {
    setToken("");
    input.value = "";
    route();
    notify("Token cleared.", "info");
  });
  window.addEventListener("planweave:token", showTokenState);
  window.addEventListener("planweave:auth", (ev) => {
    const has = Boolean(getToken());
    notify(
      has
        ? `The server refused the saved token (${ev.detail.message}). Enter another token in the header.`
        : "This server needs an API token: enter it in the field at the top right and press Save.",
    );
    if (!has) input.focus();
  });
  showTokenState();
}

initToken();
window.addEventListener("hashchange", route);
route();
