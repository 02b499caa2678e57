// Progressive enhancement only: every page works without it.
// A live section (data-refresh="SECONDS") reloads itself while nobody is typing in a form.
(function () {
  var live = document.querySelector("[data-refresh]");
  if (!live) return;
  var seconds = parseInt(live.getAttribute("data-refresh"), 10) || 10;
  setInterval(function () {
    var active = document.activeElement;
    if (active && /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(active.tagName)) return;
    if (document.hidden) return;
    window.location.reload();
  }, seconds * 1000);
})();
