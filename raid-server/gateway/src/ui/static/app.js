// The dashboard's only script: a job's live log (Server-Sent Events, the same events `rai logs -f` shows) and the
// overview's queue depths, refreshed every two seconds. Text goes in with textContent, never as HTML.
"use strict";

(function () {
  const log = document.getElementById("log");
  if (log) {
    const status = document.getElementById("status");
    const ended = document.getElementById("ended");
    const cancel = document.getElementById("cancel");
    const source = new EventSource(log.dataset.events);
    const append = (text, cls) => {
      const span = document.createElement("span");
      if (cls) span.className = cls;
      span.textContent = text.endsWith("\n") ? text : text + "\n";
      log.appendChild(span);
    };
    source.onmessage = (message) => {
      const event = JSON.parse(message.data);
      switch (event.kind) {
        case "stdout": append(event.data, null); break;
        case "stderr": append(event.data, "stderr"); break;
        case "system": append(event.data, "system"); break;
        case "status":
          status.textContent = event.status;
          status.className = "status " + event.status;
          break;
        case "end":
          status.textContent = event.status;
          status.className = "status " + event.status;
          ended.textContent = "The job ended: " + event.status + (event.reason ? " (" + event.reason + ")" : "");
          ended.hidden = false;
          if (cancel) cancel.hidden = true;
          source.close();
          break;
      }
    };
  }

  const queues = document.getElementById("queues");
  if (queues) {
    setInterval(async () => {
      try {
        const response = await fetch("/ui/queues", { credentials: "same-origin" });
        if (!response.ok) return;
        for (const q of await response.json()) {
          const row = queues.querySelector(`tr[data-queue="${CSS.escape(q.name)}"]`);
          if (!row) continue;
          row.querySelector(".waiting").textContent = q.waiting;
          row.querySelector(".leased").textContent = q.leased;
        }
      } catch (_) { /* the next tick tries again */ }
    }, 2000);
  }
})();
