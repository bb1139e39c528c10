// The portal's only page script. The Content-Security-Policy allows no inline script, no inline event
// handlers (onclick=, hx-on) and no eval, so behaviour is declared with data- attributes in the templates
// and wired here by event delegation on the document: it works for content htmx swaps in later too.
(function () {
  "use strict";
  if (window.portalScript) { return; }  // loaded once per document, even if a swap brings the tag again
  window.portalScript = true;

  function closest(target, selector) {
    return target && target.closest ? target.closest(selector) : null;
  }

  // <form data-confirm="Delete this?">: ask before a plain (non-htmx) form submits.
  // (htmx-driven elements use hx-confirm, which htmx handles without eval.)
  document.addEventListener("submit", function (evt) {
    var form = closest(evt.target, "form[data-confirm]");
    if (form && !window.confirm(form.getAttribute("data-confirm"))) {
      evt.preventDefault();
      evt.stopImmediatePropagation();
    }
  }, true);

  // <select data-navigate-tenant>: the tenant switcher goes to the chosen tenant's home at once.
  document.addEventListener("change", function (evt) {
    var select = closest(evt.target, "select[data-navigate-tenant]");
    if (select) { window.location = "/t/" + encodeURIComponent(select.value) + "/"; }
  });

  // <a data-menu-toggle aria-controls="side-nav">: the small-screen menu button opens and closes the
  // navigation (without script its href's :target shows it instead); Escape closes it again.
  function setMenu(toggle, open) {
    var nav = document.getElementById(toggle.getAttribute("aria-controls"));
    if (!nav) { return; }
    nav.classList.toggle("open", open);
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
  }
  document.addEventListener("click", function (evt) {
    var toggle = closest(evt.target, "[data-menu-toggle]");
    if (!toggle) { return; }
    evt.preventDefault();
    setMenu(toggle, toggle.getAttribute("aria-expanded") !== "true");
  });
  document.addEventListener("keydown", function (evt) {
    var toggle = document.querySelector("[data-menu-toggle][aria-expanded=true]");
    if (evt.key === " " && closest(evt.target, "[data-menu-toggle]")) {  // a link acting as a button
      evt.preventDefault();
      evt.target.click();
    } else if (evt.key === "Escape" && toggle) {
      setMenu(toggle, false);
      toggle.focus();
    }
  });

  // <input type="checkbox" data-select-all="ids">: (un)ticks every checkbox named `ids` in its table.
  document.addEventListener("click", function (evt) {
    var all = closest(evt.target, "input[data-select-all]");
    if (!all) { return; }
    var table = all.closest("table");
    var name = all.getAttribute("data-select-all");
    table.querySelectorAll("input[type=checkbox]").forEach(function (box) {
      if (box.name === name) { box.checked = all.checked; }
    });
  });

  // <input data-no-enter-submit>: Enter in a search-as-you-type picker must not submit the record form.
  document.addEventListener("keydown", function (evt) {
    if (evt.key === "Enter" && closest(evt.target, "[data-no-enter-submit]")) { evt.preventDefault(); }
  });

  // <input data-input-only>: a search-as-you-type box asks for rows on `input`; the `change` event it
  // fires when focus leaves it (say, to tick a row's checkbox) must not reach its form's `change`
  // trigger, which would ask for the same rows again and re-render them (dropping the ticks).
  document.addEventListener("change", function (evt) {
    if (closest(evt.target, "input[data-input-only]")) { evt.stopPropagation(); }
  }, true);

  // <form data-drop-empty>: empty filters stay out of the htmx request (and so out of the pushed URL).
  // With data-default-cols="a,b": the column chooser's boxes stay out too while they tick exactly the
  // page's default columns.
  document.addEventListener("htmx:configRequest", function (evt) {
    var form = closest(evt.target, "form[data-drop-empty]");
    if (!form) { return; }
    var params = evt.detail.parameters;  // htmx 2: an object view of the request's FormData
    Object.keys(params).forEach(function (key) {
      if (params[key] === "") { delete params[key]; }
    });
    if (form.hasAttribute("data-default-cols") && params.cols !== undefined) {
      var cols = [].concat(params.cols).join(",");
      if (cols === form.getAttribute("data-default-cols")) { delete params.cols; }
    }
  });

  // <form data-sync-attributes>: after each request copy the inputs' current values into their
  // attributes, so htmx's history snapshot (taken before the next request) shows the filters that
  // produced the rows when the user comes back.
  document.addEventListener("htmx:afterRequest", function (evt) {
    var form = closest(evt.target, "form[data-sync-attributes]");
    if (!form || evt.target !== form) { return; }
    Array.prototype.forEach.call(form.elements, function (el) {
      if (el.type === "checkbox") {
        el.toggleAttribute("checked", el.checked);
      } else if (el.tagName === "SELECT") {
        Array.prototype.forEach.call(el.options, function (o) { o.toggleAttribute("selected", o.selected); });
      } else if (el.name && el.type !== "hidden") {
        el.setAttribute("value", el.value);
      }
    });
  });

  // Inline child rows of a record form (templates/records/_inline.html, one <tbody data-inline-row> per
  // row): the move buttons move the row in the page (without script they submit the form, which comes
  // back with the order changed); rows are renumbered after a move or an htmx "Add".
  function renumber(table) {
    var n = 0;
    table.querySelectorAll("tbody[data-inline-row]").forEach(function (row) {
      n += 1;
      var cell = row.querySelector("[data-row-number]");
      if (cell) { cell.textContent = String(n); }
    });
  }
  document.addEventListener("click", function (evt) {
    var button = closest(evt.target, "button[data-move]");
    if (!button) { return; }
    evt.preventDefault();
    var row = button.closest("tbody[data-inline-row]");
    var up = button.getAttribute("data-move") === "up";
    var other = up ? row.previousElementSibling : row.nextElementSibling;
    if (!other || !other.matches("tbody[data-inline-row]")) { return; }
    row.parentNode.insertBefore(row, up ? other : other.nextElementSibling);
    renumber(row.closest("table"));
    button.focus();
  });
  document.addEventListener("htmx:afterSwap", function (evt) {
    var table = evt.detail && evt.detail.target;
    if (!table || !table.matches || !table.matches("table.inline-rows")) { return; }
    renumber(table);
    var rows = table.querySelectorAll("tbody[data-inline-row]");
    var first = rows.length && rows[rows.length - 1].querySelector("input:not([type=hidden]), select, textarea");
    if (first) { first.focus(); }
  });

  // Plugin upload (#plugin-upload): a progress bar, and refusals (invalid package or manifest,
  // destructive upgrade, conflicts) come back as a page to show instead of being dropped as errors.
  function inUploadForm(evt) {  // progress fires on the form itself, beforeSwap on the target (#main)
    var cfg = evt.detail && evt.detail.requestConfig;
    var elt = (cfg && cfg.elt) || evt.target;
    return closest(elt, "#plugin-upload");
  }
  document.addEventListener("htmx:xhr:progress", function (evt) {
    var bar = document.getElementById("upload-progress");
    if (!inUploadForm(evt) || !bar || !evt.detail.lengthComputable) { return; }
    bar.hidden = false;
    bar.value = Math.round(evt.detail.loaded / evt.detail.total * 100);
  });
  document.addEventListener("htmx:beforeSwap", function (evt) {
    if (inUploadForm(evt) && evt.detail.xhr.status >= 400 && evt.detail.xhr.status < 500) {
      evt.detail.shouldSwap = true;
      evt.detail.isError = false;
    }
  });
})();

// Boards (templates/records/_board.html): each column's card list becomes a SortableJS list (the
// vendored static/sortable.min.js, loaded by the board page) when the board has drag handles, which it
// has only for readers who may update. Dropping a card in another column sets the card's own
// "Move to" select to that column and submits its form: the move is the same HTMX request as the
// keyboard's, and the answer draws the board again.
(function () {
  "use strict";
  if (window.portalBoards) { return; }
  window.portalBoards = true;

  function initBoard(root) {
    if (!window.Sortable || !root || !root.querySelectorAll) { return; }
    root.querySelectorAll(".board-cards").forEach(function (list) {
      var board = list.closest(".board");
      if (list.portalSortable || !board || !board.querySelector(".drag-handle")) { return; }
      list.portalSortable = window.Sortable.create(list, {
        group: "board",
        handle: ".drag-handle",
        draggable: ".board-card",
        animation: 150,
        onEnd: function (evt) {
          if (evt.from === evt.to) { return; }
          var form = evt.item.querySelector("form.move");
          if (!form) { return; }
          form.elements.namedItem("value").value = evt.to.getAttribute("data-value");
          evt.item.classList.add("moving");
          if (form.requestSubmit) { form.requestSubmit(); } else { window.htmx.trigger(form, "submit"); }
        }
      });
    });
  }
  document.addEventListener("htmx:load", function (evt) { initBoard(evt.detail.elt); });
})();
