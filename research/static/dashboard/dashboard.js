// Render the server-built plotly figures: each .plot[data-figure] names a json_script element.
(function () {
  "use strict";
  function render() {
    if (!window.Plotly) {
      document.querySelectorAll(".plot[data-figure]").forEach(function (el) {
        el.textContent = "The plotting library did not load.";
      });
      return;
    }
    var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
    document.querySelectorAll(".plot[data-figure]").forEach(function (el) {
      var source = document.getElementById(el.dataset.figure);
      if (!source) return;
      var figure = JSON.parse(source.textContent);
      var layout = Object.assign({}, figure.layout || {});
      if (dark) layout.font = Object.assign({ color: "#e7eaf0" }, layout.font || {});
      window.Plotly.newPlot(el, figure.data || [], layout, {
        responsive: true,
        displaylogo: false,
      });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", render);
  } else {
    render();
  }
})();
