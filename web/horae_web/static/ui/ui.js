// horae UI: live output of a running execution (Server-Sent Events), confirmations, "check all".
"use strict";

(function () {
  let source = null;
  let watching = null;

  function live() { return document.getElementById("live"); }

  function setStatus(text) {
    const panel = live();
    if (panel) { panel.querySelector(".live-status").textContent = text; }
  }

  // Follow one execution's output: the tail so far, then every chunk as it is written.
  function watch(executionId) {
    const panel = live();
    if (!panel || watching === executionId) { return; }
    if (source) { source.close(); }
    watching = executionId;
    const output = document.getElementById("live-output");
    output.textContent = "";
    setStatus("Execution " + executionId + ": running…");
    source = new EventSource(panel.dataset.streamBase + encodeURIComponent(executionId) + "/stream");
    source.addEventListener("output", function (event) {
      const atBottom = output.scrollTop + output.clientHeight >= output.scrollHeight - 4;
      output.textContent += JSON.parse(event.data).text;
      if (atBottom) { output.scrollTop = output.scrollHeight; }
    });
    source.addEventListener("done", function () {
      source.close();
      source = null;
      setStatus("Execution " + executionId + ": finished.");
      panel.dataset.finished = executionId;
    });
    source.addEventListener("elsewhere", function (event) {
      source.close();
      source = null;
      setStatus(JSON.parse(event.data).message);
    });
  }

  // When nothing is streamed, watch the newest running execution shown (the table is refreshed every 2 s).
  function watchRunning() {
    const row = document.querySelector("#executions tr[data-running]");
    if (row && source === null && row.dataset.running !== watching) { watch(row.dataset.running); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    watchRunning();
    document.querySelectorAll("[data-check-all]").forEach(function (box) {
      box.addEventListener("change", function () {
        box.closest("form").querySelectorAll("input[name=names]").forEach(function (other) { other.checked = box.checked; });
      });
    });
  });
  document.addEventListener("htmx:afterSwap", watchRunning);
  document.addEventListener("click", function (event) {
    const link = event.target.closest("[data-watch]");
    if (link) { watching = null; watch(link.dataset.watch); }
    const confirmed = event.target.closest("[data-confirm]");
    if (confirmed && !window.confirm(confirmed.dataset.confirm)) { event.preventDefault(); }
  });
})();
