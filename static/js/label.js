/* Labeling page: fetch the next comparison, choose with keys 1..K / s / n, submit through
 * the labeling API. Submissions go through a queue kept in localStorage: a network error,
 * a 5xx or a 429 is retried with backoff (shown as "retrying"), never dropped; a 4xx with a
 * message is shown to the labeler. A connection that fails before any answer (a keep-alive
 * connection closed as it was reused) is tried again at once, once, unseen: both calls are
 * safe to repeat (next returns the lease already held; an identical label is answered with
 * 200). No framework, no build step. */
(function () {
  "use strict";

  var root = document.getElementById("labeler");
  if (!root) return;

  var TASK_ID = root.dataset.taskId;
  var NEXT_URL = root.dataset.nextUrl;
  var LABELS_URL = root.dataset.labelsUrl;
  var QUEUE_KEY = "preference-loop:pending-labels:" + (root.dataset.user || "");
  var MAX_BACKOFF_MS = 30000;

  var el = {
    progress: document.getElementById("progress"),
    status: document.getElementById("save-status"),
    toggle: document.getElementById("toggle-instructions"),
    instructions: document.getElementById("instructions"),
    alert: document.getElementById("alert"),
    item: document.getElementById("item"),
    prompt: document.getElementById("prompt-text"),
    samples: document.getElementById("samples"),
    skip: document.getElementById("skip"),
    none: document.getElementById("none"),
    done: document.getElementById("done"),
    again: document.getElementById("check-again"),
    legend: document.getElementById("copy-legend"),
  };

  var current = null; // the comparison on screen
  var shownAt = 0; // performance.now() when it was displayed
  var busy = false; // a submission or a fetch is in flight for the current item
  var backoff = 1000;
  var retryTimer = null;
  var retriedAtOnce = false; // since the last answer from the server

  // fetch() rejects with a TypeError when the connection fails; the first such failure since
  // the last answer is retried at once (a stale connection), later ones back off.
  function retryAtOnce(error, fn) {
    if (retriedAtOnce || !(error instanceof TypeError)) return false;
    retriedAtOnce = true;
    fn();
    return true;
  }

  // ---- CSRF -------------------------------------------------------------------------
  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // ---- the persistent queue ---------------------------------------------------------
  function loadQueue() {
    try {
      var data = JSON.parse(localStorage.getItem(QUEUE_KEY) || "[]");
      return Array.isArray(data) ? data : [];
    } catch (e) {
      return [];
    }
  }
  function saveQueue(queue) {
    try {
      localStorage.setItem(QUEUE_KEY, JSON.stringify(queue));
    } catch (e) {
      /* storage full or disabled: the in-memory queue still retries */
    }
  }
  var memoryQueue = loadQueue();
  function enqueue(entry) {
    memoryQueue.push(entry);
    saveQueue(memoryQueue);
  }
  function dequeue() {
    memoryQueue.shift();
    saveQueue(memoryQueue);
  }

  // ---- display ----------------------------------------------------------------------
  function setStatus(text, kind) {
    el.status.textContent = text;
    el.status.className = "save-status" + (kind ? " " + kind : "");
  }
  function showAlert(text) {
    el.alert.textContent = text;
    el.alert.hidden = !text;
  }
  function setProgress(progress) {
    if (!progress) return;
    el.progress.textContent =
      progress.labeled_by_me + " labeled · " + progress.remaining + " more after this one";
  }
  function setBusy(value) {
    busy = value;
    root.classList.toggle("is-busy", value);
  }

  function render(data) {
    current = data;
    el.done.hidden = true;
    el.item.hidden = false;
    // Summarization: the article (the prompt without the query template) in its own pane.
    el.prompt.textContent = data.article != null ? data.article : data.prompt;
    el.prompt.scrollTop = 0;
    if (el.legend) el.legend.hidden = !data.copies_highlighted;
    el.samples.textContent = "";
    data.samples.forEach(function (sample, position) {
      var li = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sample";
      button.dataset.position = String(position + 1);
      button.dataset.index = String(sample.index);
      button.setAttribute("aria-label", "Choose sample " + (position + 1));
      var key = document.createElement("span");
      key.className = "sample-key";
      key.textContent = String(position + 1);
      var text = document.createElement("span");
      text.className = "sample-text";
      fillMarked(text, sample.text, sample.copied);
      button.appendChild(key);
      button.appendChild(text);
      button.addEventListener("click", function () {
        choose(position + 1);
      });
      li.appendChild(button);
      el.samples.appendChild(li);
    });
    setProgress(data.progress);
    shownAt = performance.now();
    window.scrollTo(0, 0);
  }

  // The text with its [start, end) ranges wrapped in <mark class="copied"> (text nodes only:
  // nothing the model wrote is parsed as HTML). The server counts characters as code points
  // (Python), so the text is sliced as an array of code points, not UTF-16 units.
  function fillMarked(node, text, ranges) {
    var chars = Array.from(text);
    var at = 0;
    (ranges || []).forEach(function (range) {
      var start = Math.max(at, range[0]);
      var end = Math.min(chars.length, range[1]);
      if (end <= start) return;
      node.appendChild(document.createTextNode(chars.slice(at, start).join("")));
      var mark = document.createElement("mark");
      mark.className = "copied";
      mark.textContent = chars.slice(start, end).join("");
      node.appendChild(mark);
      at = end;
    });
    node.appendChild(document.createTextNode(chars.slice(at).join("")));
  }

  function renderDone() {
    current = null;
    el.item.hidden = true;
    el.done.hidden = false;
    el.progress.textContent = "Nothing left to label";
  }

  // ---- API --------------------------------------------------------------------------
  function errorMessage(response) {
    return response
      .json()
      .then(function (body) {
        if (body && typeof body.detail === "string") {
          return body.errors ? body.detail + ": " + JSON.stringify(body.errors) : body.detail;
        }
        return JSON.stringify(body);
      })
      .catch(function () {
        return "Request failed (" + response.status + ").";
      });
  }

  function fetchNext() {
    if (memoryQueue.length) return flush();
    setBusy(true);
    fetch(NEXT_URL, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        retriedAtOnce = false;
        if (response.status === 204) {
          setBusy(false);
          renderDone();
          return;
        }
        if (response.ok) {
          return response.json().then(function (data) {
            setBusy(false);
            backoff = 1000;
            showAlert("");
            render(data);
          });
        }
        if (response.status === 429 || response.status >= 500) throw new Error("retry");
        return errorMessage(response).then(function (message) {
          setBusy(false);
          showAlert(message);
        });
      })
      .catch(function (error) {
        if (retryAtOnce(error, fetchNext)) return;
        showAlert("Cannot reach the server; trying again…");
        scheduleRetry(fetchNext);
      });
  }

  function scheduleRetry(fn, retryAfterSeconds) {
    var wait = retryAfterSeconds ? retryAfterSeconds * 1000 : backoff;
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    clearTimeout(retryTimer);
    retryTimer = setTimeout(fn, wait);
    return wait;
  }

  function flush() {
    if (!memoryQueue.length) {
      fetchNext();
      return;
    }
    setBusy(true);
    var entry = memoryQueue[0];
    setStatus("saving…", "saving");
    fetch(LABELS_URL, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRFToken": csrfToken(),
      },
      body: JSON.stringify(entry),
    })
      .then(function (response) {
        retriedAtOnce = false;
        if (response.ok) {
          dequeue();
          backoff = 1000;
          setStatus("saved", "saved");
          showAlert("");
          flush();
          return;
        }
        if (response.status === 429 || response.status >= 500) {
          var retryAfter = parseInt(response.headers.get("Retry-After") || "", 10);
          var wait = scheduleRetry(flush, isNaN(retryAfter) ? 0 : retryAfter);
          setStatus("retrying in " + Math.round(wait / 1000) + " s…", "retrying");
          return;
        }
        // A 4xx: the server refused this label (lease expired, conflict, bad input).
        return errorMessage(response).then(function (message) {
          dequeue();
          setStatus("not saved", "error");
          showAlert(message);
          flush();
        });
      })
      .catch(function (error) {
        if (retryAtOnce(error, flush)) return;
        var wait = scheduleRetry(flush);
        setStatus("offline: retrying in " + Math.round(wait / 1000) + " s…", "retrying");
      });
  }

  function submit(kind, choice) {
    if (!current || busy) return;
    var entry = {
      comparison_id: current.comparison_id,
      kind: kind,
      choice: choice,
      time_spent_ms: Math.max(0, Math.round(performance.now() - shownAt)),
    };
    enqueue(entry);
    markChosen(kind, choice);
    flush();
  }

  function markChosen(kind, choice) {
    var buttons = el.samples.querySelectorAll(".sample");
    buttons.forEach(function (button) {
      var chosen = kind === "choice" && button.dataset.index === String(choice);
      button.classList.toggle("chosen", chosen);
    });
    el.skip.classList.toggle("chosen", kind === "skip");
    el.none.classList.toggle("chosen", kind === "none");
  }

  function choose(position) {
    if (!current) return;
    var sample = current.samples[position - 1];
    if (!sample) return;
    submit("choice", sample.index);
  }

  // ---- instructions and keys --------------------------------------------------------
  function toggleInstructions(force) {
    var open = typeof force === "boolean" ? force : el.instructions.hidden;
    el.instructions.hidden = !open;
    el.toggle.setAttribute("aria-expanded", String(open));
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (target && /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)) return;
    var key = event.key;
    if (key === "?") {
      toggleInstructions();
    } else if (key === "Escape") {
      toggleInstructions(false);
    } else if (/^[1-9]$/.test(key)) {
      choose(parseInt(key, 10));
    } else if (key === "s" || key === "S") {
      submit("skip", null);
    } else if (key === "n" || key === "N") {
      submit("none", null);
    } else {
      return;
    }
    event.preventDefault();
  });

  el.toggle.addEventListener("click", function () {
    toggleInstructions();
  });
  el.skip.addEventListener("click", function () {
    submit("skip", null);
  });
  el.none.addEventListener("click", function () {
    submit("none", null);
  });
  el.again.addEventListener("click", fetchNext);
  window.addEventListener("online", function () {
    if (memoryQueue.length) {
      clearTimeout(retryTimer);
      backoff = 1000;
      flush();
    }
  });

  if (memoryQueue.length) setStatus("saving…", "saving");
  // Pending labels from an earlier visit go first; then the next comparison.
  flush();
  root.dataset.ready = "true";
  root.dataset.task = TASK_ID;
})();
