/* liqheat: render every embedded Vega-Lite spec with vega-embed (loaded from vega-bundle.js),
   sized to its container (re-rendered when the width changes), with the chart's own PNG/SVG
   export; the symbol switch navigates on change. */
(function () {
  "use strict";
  var views = {};
  window.liqheatViews = views;

  function sized(spec, el) {
    var meta = spec.usermeta && spec.usermeta.liqheat;
    if (!meta) { return spec; }
    var extra = Number(el.getAttribute("data-extra") || 0);
    var w = Math.max(160, Math.floor(el.clientWidth) - meta.reserve - extra);
    var phone = el.clientWidth < 600;
    if (spec.vconcat) {
      spec.vconcat.forEach(function (c, k) {
        c.width = w;
        if (k === 0 && phone && meta.phone_height) { c.height = meta.phone_height; }
      });
    } else {
      spec.width = w;
      if (phone) { spec.height = Math.min(spec.height || 300, 240); }
    }
    if (phone && meta.phone_legend) {
      // narrower colour bars, titles above them: both fit a phone's width
      (function shrink(node) {
        if (!node || typeof node !== "object") { return; }
        if (node.legend && node.legend.gradientLength) {
          node.legend.gradientLength = meta.phone_legend;
          node.legend.titleOrient = "top";
          node.legend.titleAnchor = "start";
        }
        Object.keys(node).forEach(function (k) { if (k !== "data") { shrink(node[k]); } });
      })(spec);
    }
    if (meta.columns && spec.params) {
      spec.params.forEach(function (p) {
        if (p.name === "dense") { p.value = w / meta.columns < meta.candle_px; }
      });
    }
    return spec;
  }

  // ------------------------------------------------------------------ tooltips
  var tip = null;
  function tipElement() {
    if (!tip) {
      tip = document.createElement("div");
      tip.id = "vg-tooltip-element";
      tip.className = "vg-tooltip liqheat-tip";
      document.body.appendChild(tip);
    }
    return tip;
  }
  function utc(ms) { return new Date(ms).toISOString().slice(0, 16).replace("T", " ") + " UTC"; }
  function usd(v) { return "$" + Math.round(v).toLocaleString("en-US"); }
  function price(v) { return Number(v.toPrecision(8)).toLocaleString("en-US", { maximumFractionDigits: 8 }); }
  function esc(text) {
    return String(text).replace(/[&<>"]/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;" }[c];
    });
  }
  function handler(meta) {
    return function (h, event, item, value) {
      var el = tipElement();
      if (value === null || value === undefined || value === "") { el.style.display = "none"; return; }
      var rows = [];
      if (typeof value === "object" && value.L !== undefined && value.p !== undefined && meta) {
        // a heatmap cell: its raw datum (see charts.heatmap_spec)
        rows = [["time (UTC)", utc(value.t)],
                ["price bucket", price(value.p) + " – " + price(value.p + meta.price_step)],
                ["long USD", usd(value.L)], ["short USD", usd(value.S)]];
      } else if (typeof value === "object") {
        Object.keys(value).forEach(function (k) { rows.push([k, value[k]]); });
      } else {
        rows = [["", value]];
      }
      el.innerHTML = "<table>" + rows.map(function (r) {
        return "<tr><td class=\"key\">" + esc(r[0]) + "</td><td class=\"value\">" + esc(r[1]) + "</td></tr>";
      }).join("") + "</table>";
      el.style.display = "block";
      var x = event.clientX + 14, y = event.clientY + 14;
      var w = el.offsetWidth, hgt = el.offsetHeight;
      if (x + w > window.innerWidth - 4) { x = Math.max(4, event.clientX - w - 14); }
      if (y + hgt > window.innerHeight - 4) { y = Math.max(4, event.clientY - hgt - 14); }
      el.style.left = (x + window.scrollX) + "px";
      el.style.top = (y + window.scrollY) + "px";
    };
  }

  function render(el, started) {
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
    var t0 = started || performance.now();
    var name = el.getAttribute("data-export");
    var meta = spec.usermeta && spec.usermeta.liqheat;
    var opts = { renderer: "canvas", actions: false, tooltip: handler(meta) };
    if (name) {
      opts.actions = { export: true, source: false, compiled: false, editor: false };
      opts.downloadFileName = name;
      opts.scaleFactor = 2;
    }
    if (views[el.id]) { views[el.id].finalize(); }
    el.setAttribute("data-width", String(el.clientWidth));
    window.vegaEmbed(el, sized(spec, el), opts)
      .then(function (result) {
        views[el.id] = result.view;
        // axis titles and labels can make a chart wider than its box: draw it once more,
        // narrower by the excess, so nothing is cut off or overflows
        var canvas = el.querySelector("canvas");
        var over = canvas ? Math.ceil(canvas.getBoundingClientRect().width - el.clientWidth) : 0;
        if (over > 0 && !el.getAttribute("data-extra")) {
          el.setAttribute("data-extra", String(over + 2));
          render(el, t0);
          return;
        }
        el.setAttribute("data-rendered", "true");
        el.setAttribute("data-draw-ms", String(Math.round(performance.now() - t0)));
      })
      .catch(function (err) {
        el.textContent = "chart failed to render";
        console.error("liqheat: chart failed", err);
      });
  }

  function start() {
    var selects = document.querySelectorAll("select[data-nav]");
    for (var s = 0; s < selects.length; s++) {
      selects[s].addEventListener("change", function (ev) {
        if (ev.target.value) { window.location.href = ev.target.value; }
      });
    }
    if (typeof window.vegaEmbed !== "function") {
      console.error("liqheat: vega-bundle.js did not load");
      return;
    }
    var charts = document.querySelectorAll("[data-vega-spec]");
    for (var k = 0; k < charts.length; k++) { render(charts[k]); }
    var timer = null;
    window.addEventListener("resize", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        for (var k = 0; k < charts.length; k++) {
          var el = charts[k];
          if (el.getAttribute("data-width") !== String(el.clientWidth)) {
            el.removeAttribute("data-rendered");
            el.removeAttribute("data-extra");
            render(el);
          }
        }
      }, 200);
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
