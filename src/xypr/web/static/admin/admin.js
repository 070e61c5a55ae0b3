// Xypr admin dashboard: the chart (drawn from its table), copy buttons, session expiry. htmx does the rest.
(function () {
  "use strict";

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  var chart = null;

  function drawChart() {
    var table = document.getElementById("throughput-table");
    var box = document.getElementById("throughput-chart");
    if (!table || !box || typeof uPlot === "undefined") return;
    var minutes = [], inbound = [], outbound = [];
    table.querySelectorAll("tbody tr").forEach(function (row) {
      minutes.push(Number(row.dataset.minute));
      inbound.push(Number(row.dataset.inbound));
      outbound.push(Number(row.dataset.outbound));
    });
    var data = [minutes, inbound, outbound];
    var width = Math.max(280, box.clientWidth);
    if (chart && chart.width === width) {
      chart.setData(data);
      return;
    }
    if (chart) chart.destroy();
    var axis = { stroke: css("--muted"), grid: { stroke: css("--line"), width: 1 }, ticks: { stroke: css("--line") } };
    chart = new uPlot({
      width: width,
      height: 220,
      series: [
        {},
        { label: "Inbound", stroke: css("--accent"), width: 2, fill: "rgba(36,84,214,0.08)" },
        { label: "Outbound", stroke: css("--green"), width: 2 }
      ],
      axes: [axis, Object.assign({}, axis, { size: 40 })],
      scales: { y: { range: function (u, min, max) { return [0, Math.max(5, max)]; } } },
      cursor: { drag: { x: false, y: false } }
    }, data, box);
  }

  function copyButtons(root) {
    root.querySelectorAll("button[data-copy]").forEach(function (button) {
      if (button.dataset.ready) return;
      button.dataset.ready = "1";
      button.addEventListener("click", function () {
        var source = document.getElementById(button.dataset.copy);
        if (!source) return;
        source.select();
        var done = function () {
          button.textContent = "Copied";
          setTimeout(function () { button.textContent = button.dataset.label || "Copy"; }, 1500);
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(source.value).then(done, function () { document.execCommand("copy"); done(); });
        } else {
          document.execCommand("copy");
          done();
        }
      });
    });
  }

  function readCookie(name) {
    var found = document.cookie.split("; ").find(function (part) { return part.indexOf(name + "=") === 0; });
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  }

  // On the sign-in page: a session whose access token merely expired is renewed without typing again.
  function renewSession() {
    var form = document.querySelector("form[data-renew]");
    if (!form || !readCookie("xypr_csrf")) return;
    fetch("/auth/refresh", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": readCookie("xypr_csrf") } })
      .then(function (answer) { if (answer.ok) window.location.assign(form.dataset.renew); })
      .catch(function () { /* stay on the sign-in page */ });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawChart();
    copyButtons(document);
    renewSession();
    window.addEventListener("resize", function () { if (chart) { chart.destroy(); chart = null; } drawChart(); });
  });
  document.addEventListener("htmx:afterSwap", function (event) { drawChart(); copyButtons(event.target); });
  document.addEventListener("htmx:sseMessage", function () { drawChart(); });
})();
