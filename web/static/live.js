// Live page: follow the station's state over server-sent events and refresh the skeleton view a
// few times a second while the page is visible. No library; builds DOM nodes, never HTML strings.
(function () {
  "use strict";
  var root = document.getElementById("live");
  if (!root) return;
  var fields = {};
  Array.prototype.forEach.call(root.querySelectorAll("[data-live]"), function (el) { fields[el.dataset.live] = el; });

  function set(name, text) {
    var el = fields[name];
    if (el && el.textContent !== text) el.textContent = text;
  }
  function fixed(value, digits, unit) {
    return value === null || value === undefined ? "–" : value.toFixed(digits) + (unit || "");
  }
  function label(name) { return name ? name.replace(/_/g, " ") : ""; }

  var VERDICT_TEXT = {"not judged": "not judged (camera not side-on)", "borderline": "not clean: borderline, look at it",
                      "clean": "clean"};
  var VERDICT_CLASS = {"not judged": "not-judged", "borderline": "borderline", "clean": "clean"};

  function renderRep(rep) {
    var list = fields.last_rep_faults, link = fields.last_rep_link;
    if (!rep) { set("last_rep_line", "none yet"); return; }
    set("last_rep_line", "Rep " + rep.rep_index + " · hip " + fixed(rep.peak_hip_flexion_deg, 0, "°") +
        " · knee " + fixed(rep.knee_flexion_at_bottom_deg, 0, "°") + " · Hip÷knee " + fixed(rep.hinge_ratio, 1, "×") +
        " · " + (rep.lockout_reached ? "locked out" : "no lockout"));
    if (list && list.dataset.repId !== String(rep.id)) {
      list.dataset.repId = String(rep.id);
      while (list.firstChild) list.removeChild(list.firstChild);
      if (!rep.faults.length) {  // the rep's verdict in the words of templates/rep_verdict.html
        var verdict = document.createElement("li"), span = document.createElement("span");
        span.className = VERDICT_CLASS[rep.verdict] || "clean";
        span.textContent = VERDICT_TEXT[rep.verdict] || "clean";
        verdict.appendChild(span);
        list.appendChild(verdict);
      }
      rep.faults.forEach(function (f) {
        var li = document.createElement("li"), name = document.createElement("strong");
        name.textContent = label(f.name);
        li.appendChild(name);
        li.appendChild(document.createTextNode(" — " + f.cue));
        list.appendChild(li);
      });
    }
    if (link) {
      link.hidden = false;
      link.href = "/sessions/" + rep.session_id + "#rep-" + rep.rep_index;
    }
  }

  function render(s) {
    root.className = "live state-" + s.state;
    root.dataset.version = String(s.version);
    set("state_label", s.state_label);
    set("cue", s.cue);
    set("error", s.error);
    set("storage", s.storage || "");
    set("hub_link", s.hub_link || "");
    set("session_reps", String(s.session_reps));
    set("profile", s.profile_title || s.profile);
    set("last_fault_label", s.last_fault_label || "none yet");
    set("last_fault_cue", s.last_fault_cue);
    set("last_fault_clock", s.last_fault_clock ? "at " + s.last_fault_clock : "");
    set("fps", fixed(s.fps, 1));
    set("buzzer", s.buzzer_enabled ? "on" : "off");
    renderRep(s.last_rep);
  }

  if (window.EventSource) {
    var events = new EventSource(root.dataset.events);
    events.addEventListener("snapshot", function (e) {
      set("connection", "");
      render(JSON.parse(e.data));
    });
    events.onerror = function () { set("connection", "reconnecting…"); };
  } else {
    set("connection", "this browser cannot follow live updates; reload to refresh");
  }

  var img = document.getElementById("preview"), note = document.getElementById("preview-note");
  var period = 1000 / Math.max(0.5, Number(root.dataset.previewFps) || 3), count = 0;
  function nextFrame(delay) { window.setTimeout(loadFrame, delay); }
  function loadFrame() {
    if (document.hidden) { nextFrame(1000); return; }
    count += 1;
    img.src = root.dataset.preview + "?n=" + count;
  }
  img.onload = function () { img.hidden = false; note.hidden = true; nextFrame(period); };
  img.onerror = function () { img.hidden = true; note.hidden = false; nextFrame(1000); };
  loadFrame();
})();
