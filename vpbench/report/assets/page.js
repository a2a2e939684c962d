// reports/index.html: sortable tables, the synced prediction players, runs opened from links. No network.
"use strict";

function cellKey(cell) {
  const text = (cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent).trim();
  const number = parseFloat(text.replace(/,/g, "").replace(/^\+/, ""));
  return { text: text, number: Number.isFinite(number) ? number : null };
}

function sortTable(table, column, header) {
  const body = table.tBodies[0];
  const descending = header.getAttribute("aria-sort") === "ascending";
  const rows = Array.from(body.rows);
  rows.sort(function (a, b) {
    const x = cellKey(a.cells[column]), y = cellKey(b.cells[column]);
    if (x.number !== null && y.number !== null) return descending ? y.number - x.number : x.number - y.number;
    if (x.number !== null) return -1;  // values before the cells without one ("-"), either way
    if (y.number !== null) return 1;
    return descending ? y.text.localeCompare(x.text) : x.text.localeCompare(y.text);
  });
  rows.forEach(function (row) { body.appendChild(row); });
  Array.from(header.parentNode.children).forEach(function (th) { th.removeAttribute("aria-sort"); });
  header.setAttribute("aria-sort", descending ? "descending" : "ascending");
}

function setUpTables() {
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.from(table.tHead.rows[0].cells).forEach(function (header, column) {
      header.title = "Sort by this column";
      header.addEventListener("click", function () { sortTable(table, column, header); });
    });
  });
}

function setUpPlayer(player) {
  const data = JSON.parse(player.querySelector("script[type='application/json']").textContent);
  const images = Array.from(player.querySelectorAll(".panel img"));
  const slider = player.querySelector("input[type=range]");
  const label = player.querySelector(".frame-label");
  const play = player.querySelector("button.play");
  let timer = null;
  function show(t) {
    player.dataset.frame = String(t);
    slider.value = String(t);
    images.forEach(function (img, i) { img.src = data.panels[i][t]; });
    label.textContent = "t = " + (t + 1) + " of " + data.count + (t < data.inputs ? " (input)" : " (predicted)");
  }
  function stop() { if (timer !== null) { clearInterval(timer); timer = null; } play.textContent = "Play"; }
  play.addEventListener("click", function () {
    if (timer !== null) { stop(); return; }
    play.textContent = "Pause";
    timer = setInterval(function () { show((Number(slider.value) + 1) % data.count); }, data.ms);
  });
  slider.addEventListener("input", function () { stop(); show(Number(slider.value)); });
  player.querySelector("button.previous").addEventListener("click", function () {
    stop(); show((Number(slider.value) + data.count - 1) % data.count);
  });
  player.querySelector("button.next").addEventListener("click", function () {
    stop(); show((Number(slider.value) + 1) % data.count);
  });
  show(0);
}

function openLinkedRun() {
  const target = location.hash ? document.getElementById(location.hash.slice(1)) : null;
  if (target && target.tagName === "DETAILS") target.open = true;
}

document.addEventListener("DOMContentLoaded", function () {
  setUpTables();
  document.querySelectorAll(".player").forEach(setUpPlayer);
  window.addEventListener("hashchange", openLinkedRun);
  openLinkedRun();
});
