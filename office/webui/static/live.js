// Live updates: a table with data-live="<id>" grows by a row for every new
// message the server streams (Server-Sent Events). No framework, no build
// step; every value goes in as text, never as HTML.
"use strict";
(function () {
  var table = document.querySelector("table[data-live]");
  if (!table || !window.EventSource) { return; }
  var tbody = table.tBodies[0];
  var status = document.getElementById("live-status");
  var source = new EventSource("/events?since=" + encodeURIComponent(table.dataset.live));
  function cell(row, text, cls) {
    var td = row.insertCell(-1);
    if (cls) {
      var span = document.createElement("span");
      span.className = cls;
      span.textContent = text;
      td.appendChild(span);
    } else {
      td.textContent = text;
    }
    return td;
  }
  source.addEventListener("open", function () { if (status) { status.hidden = false; } });
  source.addEventListener("error", function () { if (status) { status.hidden = true; } });
  source.addEventListener("message", function (ev) {
    var m = JSON.parse(ev.data);
    var row = tbody.insertRow(0);
    row.className = "arrived";
    row.dataset.id = m.id;
    var cols = table.dataset.columns || "received,channel,sender,subject,offices,status,verification";
    cols.split(",").forEach(function (c) {
      switch (c) {
        case "received": cell(row, m.receivedAt); break;
        case "channel": cell(row, m.channel); break;
        case "sender": cell(row, m.sender); break;
        case "subject":
          var a = document.createElement("a");
          a.href = m.url;
          a.textContent = m.subject || m.url;
          row.insertCell(-1).appendChild(a);
          break;
        case "offices": cell(row, m.offices); break;
        case "status": cell(row, m.status, "status s-" + m.statusKey); break;
        case "verification": cell(row, m.verification, "verify v-" + m.verificationKey); break;
        default: cell(row, "");
      }
    });
    var empty = document.getElementById("empty-queue");
    if (empty) { empty.hidden = true; }
  });
})();
