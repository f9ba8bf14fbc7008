/* liqheat: render every embedded Vega-Lite spec with vega-embed (loaded from vega-bundle.js). */
(function () {
  "use strict";
  function render(el) {
    var holder = document.getElementById(el.getAttribute("data-vega-spec"));
    if (!holder) { return; }
    var spec;
    try {
      spec = JSON.parse(holder.textContent);
    } catch (err) {
      el.textContent = "chart data could not be read";
      console.error("liqheat: bad chart spec", err);
      return;
    }
    window.vegaEmbed(el, spec, { actions: false, renderer: "canvas" })
      .then(function () { el.setAttribute("data-rendered", "true"); })
      .catch(function (err) {
        el.textContent = "chart failed to render";
        console.error("liqheat: chart failed", err);
      });
  }
  function start() {
    if (typeof window.vegaEmbed !== "function") {
      console.error("liqheat: vega-bundle.js did not load");
      return;
    }
    var charts = document.querySelectorAll("[data-vega-spec]");
    for (var k = 0; k < charts.length; k++) { render(charts[k]); }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
