// Agora's one script, first-party: localised times, live updates, copy buttons. Every page
// works without it.
"use strict";

function localiseTimes(root) {
  const fmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  const rel = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  for (const t of root.querySelectorAll("time[datetime]")) {
    const when = new Date(t.getAttribute("datetime"));
    if (isNaN(when)) continue;
    const s = Math.round((when - Date.now()) / 1000);
    const abs = Math.abs(s);
    let text;
    if (abs < 60) text = rel.format(s, "second");
    else if (abs < 3600) text = rel.format(Math.round(s / 60), "minute");
    else if (abs < 86400) text = rel.format(Math.round(s / 3600), "hour");
    else text = rel.format(Math.round(s / 86400), "day");
    t.textContent = text;
    t.title = fmt.format(when);
  }
}

// When the node says something changed, fetch this page again and swap its live part (the feed,
// a post with its comments and votes, the sync table), unless the person is typing in it.
let refreshing = false;
async function refreshLive() {
  const live = document.querySelector("[data-live]");
  if (!live || refreshing) return;
  if (live.contains(document.activeElement) && document.activeElement.matches("input, textarea")) return;
  refreshing = true;
  try {
    const response = await fetch(location.href, { credentials: "same-origin" });
    if (!response.ok) return;
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = doc.querySelector("[data-live]");
    if (fresh) {
      live.replaceWith(fresh);
      localiseTimes(fresh);
    }
  } finally {
    refreshing = false;
  }
}

// The navigation's inbox badge: the node's count of unread items, read when the page loads and
// whenever the node says something changed (never on a timer).
async function refreshInbox() {
  const badge = document.querySelector("[data-inbox-count]");
  if (!badge) return;
  try {
    const response = await fetch("/inbox/count", { credentials: "same-origin" });
    if (!response.ok) return;
    const unread = parseInt(await response.text(), 10);
    badge.textContent = unread > 0 ? String(unread) : "";
    badge.hidden = !(unread > 0);
    badge.title = unread > 0 ? unread + " unread" : "";
  } catch (_) {}
}

// A browser gives a site six connections at a time over HTTP/1.1, and a live stream holds one for
// as long as it is open. A page left behind (kept in the back-forward cache, or a tab in the
// background) must not keep its stream, or a person who opens a few pages finds the next click
// waiting for a free connection. So a page holds a stream only while it is shown, and on coming
// back it fetches what it missed.
let events = null;
function listen() {
  if (events || !document.querySelector("[data-live], [data-inbox-count]") || !window.EventSource) return;
  events = new EventSource("/events");
  let timer = null;
  events.addEventListener("change", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { refreshLive(); refreshInbox(); }, 150);
  });
}

function stopListening() {
  if (events) {
    events.close();
    events = null;
  }
}

window.addEventListener("pagehide", stopListening);
window.addEventListener("pageshow", (e) => {
  if (e.persisted) {
    listen();
    refreshLive();
    refreshInbox();
  }
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden") {
    stopListening();
  } else if (!events) {
    listen();
    refreshLive();
    refreshInbox();
  }
});

function copyButtons() {
  for (const input of document.querySelectorAll("input[data-copy]")) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "Copy";
    button.addEventListener("click", async () => {
      input.select();
      try { await navigator.clipboard.writeText(input.value); button.textContent = "Copied"; }
      catch (_) { document.execCommand("copy"); }
    });
    input.after(button);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  localiseTimes(document);
  copyButtons();
  refreshInbox();
  listen();
});
