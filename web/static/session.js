// A session page folds each rep's detail: a link to a rep (#rep-3, from the table, the live page or
// back from a correction) opens that rep's fold, so the trainer lands on what they asked for.
(function () {
  function openTarget() {
    var id = decodeURIComponent(location.hash.slice(1));
    var target = id && document.getElementById(id);
    if (!target) return;
    var fold = target.querySelector("details.rep-detail");
    if (fold) fold.open = true;
    for (var el = target; el; el = el.parentElement) if (el.tagName === "DETAILS") el.open = true;
    target.scrollIntoView();
  }
  window.addEventListener("hashchange", openTarget);
  document.addEventListener("DOMContentLoaded", openTarget);
})();
