// The hub's floor page: follow every station's state over server-sent events (/api/floor/events).
// No library; builds DOM nodes, never HTML strings (station ids and fault names come from the LAN).
(function () {
  "use strict";
  var root = document.getElementById("floor");
  if (!root) return;
  var connection = document.getElementById("floor-connection");
  var dropped = document.getElementById("floor-dropped");
  var count = document.getElementById("floor-count");
  var hubLink = document.getElementById("floor-hub-link");

  function text(v, fallback) { return v === null || v === undefined ? fallback : String(v); }
  function pct(v) { return v === null || v === undefined ? "–" : Math.round(v) + "%"; }
  function clock(ts) {
    if (ts === null || ts === undefined) return "–";
    var d = new Date(ts * 1000), two = function (n) { return (n < 10 ? "0" : "") + n; };
    return two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds());
  }

  function el(tag, cls, content) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (content !== undefined) node.textContent = content;
    return node;
  }

  function field(name) { var span = el("span"); span.dataset.field = name; return span; }

  function card(id) {
    var article = el("article", "card station-card"), h2 = el("h2"), link = el("a", "", id);
    article.dataset.station = id;
    link.href = "/history?station=" + encodeURIComponent(id);
    h2.appendChild(link);
    article.appendChild(h2);
    var state = el("p", "state"); state.dataset.field = "state_label"; article.appendChild(state);
    var up = el("p", "up"), who = el("b");
    who.dataset.field = "athlete";
    up.appendChild(document.createTextNode("Up: "));
    up.appendChild(who);
    article.appendChild(up);
    var line = el("p");
    [field("drill"), " · ", field("reps_this_session"), " reps this session · ", field("reps_today"), " today · ",
     field("clean_pct_today"), " clean"].forEach(function (part) {
      line.appendChild(typeof part === "string" ? document.createTextNode(part) : part);
    });
    article.appendChild(line);
    var small = el("p", "muted small");
    ["Last fault: ", field("last_fault_label"), " · buzzer ", field("buzzer"), " · last rep ", field("last_rep_clock")]
      .forEach(function (part) { small.appendChild(typeof part === "string" ? document.createTextNode(part) : part); });
    article.appendChild(small);
    var gap = el("p", "small"); gap.dataset.field = "hub_gap"; article.appendChild(gap);
    return article;
  }

  function set(article, name, value) {
    var node = article.querySelector('[data-field="' + name + '"]');
    if (node && node.textContent !== value) node.textContent = value;
  }

  function render(floor) {
    root.dataset.version = String(floor.version);
    var empty = document.getElementById("floor-empty");
    if (empty && floor.stations.length) empty.remove();
    count.textContent = String(floor.stations.length);
    floor.stations.forEach(function (s, i) {
      var article = root.querySelector('article[data-station="' + CSS.escape(s.station) + '"]');
      if (!article) article = card(s.station);
      if (root.children[i] !== article) root.insertBefore(article, root.children[i] || null);
      article.className = "card station-card state-" + (s.state || "unknown") + (s.online === false ? " offline" : "");
      set(article, "state_label", s.state_label);
      set(article, "athlete", s.athlete || "nobody named");
      set(article, "drill", text(s.drill_title || s.drill, "–"));
      set(article, "reps_this_session", text(s.reps_this_session, "–"));
      set(article, "reps_today", text(s.reps_today, "–"));
      set(article, "clean_pct_today", pct(s.clean_pct_today));
      set(article, "last_fault_label", s.last_fault_label || "none");
      set(article, "buzzer", s.buzzer_on === null ? "–" : (s.buzzer_on ? "on" : "off"));
      set(article, "last_rep_clock", clock(s.last_rep_at));
      set(article, "hub_gap", s.hub_gap);
    });
    var link = floor.hub_link;
    hubLink.textContent = link.broker === "lost"
      ? "The hub has lost the broker (since " + clock(link.since) + "): each station below is as last heard, not offline; their reps wait in their outboxes."
      : (link.broker === "connecting" ? "The hub is connecting to the broker." : "");
    var reasons = Object.keys(floor.dropped).sort().map(function (r) { return r + " ×" + floor.dropped[r]; });
    dropped.textContent = reasons.length ? "dropped: " + reasons.join(", ") : "";
  }

  if (window.EventSource) {
    var events = new EventSource(root.dataset.events);
    events.addEventListener("floor", function (e) {
      connection.textContent = "";
      render(JSON.parse(e.data));
    });
    events.onerror = function () { connection.textContent = "reconnecting…"; };
  } else {
    connection.textContent = "this browser cannot follow live updates; reload to refresh";
  }
})();
