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

  // <a data-dialog-open="id">: opens that <dialog> as a modal (without script the link reloads the page
  // with it open). <a data-dialog-close> inside closes it; a dialog the server sent open (a refused
  // save, data-open-modal) becomes modal once the page has loaded.
  document.addEventListener("click", function (evt) {
    var opener = closest(evt.target, "[data-dialog-open]");
    var closer = closest(evt.target, "[data-dialog-close]");
    var dialog = opener ? document.getElementById(opener.getAttribute("data-dialog-open"))
      : closer ? closest(closer, "dialog") : null;
    if (!dialog || !dialog.showModal) { return; }
    evt.preventDefault();
    if (opener) {
      if (dialog.open) { dialog.close(); }
      dialog.showModal();
    } else {
      dialog.close();
    }
  });
  function modalDialogs(root) {
    (root || document).querySelectorAll("dialog[open][data-open-modal]").forEach(function (dialog) {
      if (!dialog.showModal) { return; }
      dialog.removeAttribute("data-open-modal");
      dialog.close();
      dialog.showModal();
      var invalid = dialog.querySelector("[aria-invalid=true]");
      if (invalid) { invalid.focus(); }
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { modalDialogs(); });
  } else {
    modalDialogs();
  }
  document.addEventListener("htmx:load", function (evt) { modalDialogs(evt.target); });

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
  document.addEventListener("htmx:configRequest", function (evt) {
    if (!closest(evt.target, "form[data-drop-empty]")) { return; }
    var params = evt.detail.parameters;  // htmx 2: an object view of the request's FormData
    Object.keys(params).forEach(function (key) {
      if (params[key] === "") { delete params[key]; }
    });
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

  // The role–permission matrix (table[data-matrix]): a filter box narrows its rows as you type, and
  // toggles tick or clear a whole row, a column (of the rows shown) or a module group. Without script
  // the plain checkboxes still work; the toggles and the filter stay hidden until initMatrix runs.
  function matrixBoxes(scope, col) {
    return Array.prototype.filter.call(scope.querySelectorAll("input[name=perm]"), function (box) {
      var row = box.closest("tr");
      if (box.disabled || (row && row.hidden) || (row && row.parentNode.hidden)) { return false; }
      return !col || box.closest("td").getAttribute("data-col") === col;
    });
  }
  function toggleTargets(toggle) {
    var kind = toggle.getAttribute("data-toggle");
    if (kind === "row") { return matrixBoxes(toggle.closest("tr")); }
    if (kind === "group") { return matrixBoxes(toggle.closest("tbody")); }
    return matrixBoxes(toggle.closest("table"), toggle.getAttribute("data-col"));
  }
  function syncToggles(table) {
    table.querySelectorAll("input[data-toggle]").forEach(function (toggle) {
      var boxes = toggleTargets(toggle);
      var on = boxes.filter(function (box) { return box.checked; }).length;
      toggle.checked = boxes.length > 0 && on === boxes.length;
      toggle.indeterminate = on > 0 && on < boxes.length;
      toggle.disabled = boxes.length === 0;
    });
  }
  function filterMatrix(table, query) {
    var words = query.toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    var total = 0;
    table.querySelectorAll("tbody").forEach(function (body) {
      var any = false;
      body.querySelectorAll("tr[data-row]").forEach(function (row) {
        var text = row.getAttribute("data-filter") || "";
        var hit = words.every(function (word) { return text.indexOf(word) !== -1; });
        row.hidden = !hit;
        total += 1;
        if (hit) { shown += 1; any = true; }
      });
      body.hidden = !any;
    });
    var form = table.closest("form");
    var count = form.querySelector("[data-matrix-count]");
    if (count) {
      count.textContent = words.length ? count.getAttribute("data-matrix-count")
        .replace("{shown}", shown).replace("{total}", total) : "";
    }
    var empty = form.querySelector("[data-matrix-empty]");
    if (empty) { empty.hidden = shown > 0; }
    syncToggles(table);
  }
  function initMatrix(table) {
    if (table.classList.contains("enhanced")) { return; }
    table.classList.add("enhanced");
    table.querySelectorAll("input[data-toggle]").forEach(function (toggle) { toggle.hidden = false; });
    var tools = table.closest("form").querySelector("[data-matrix-tools]");
    if (tools) { tools.hidden = false; }
    syncToggles(table);
  }
  function initMatrices() { document.querySelectorAll("table[data-matrix]").forEach(initMatrix); }
  initMatrices();  // this script is deferred: the document is parsed by now
  document.addEventListener("htmx:load", initMatrices);
  document.addEventListener("change", function (evt) {
    var table = closest(evt.target, "table[data-matrix]");
    if (!table) { return; }
    if (evt.target.hasAttribute("data-toggle")) {
      var on = evt.target.checked;
      toggleTargets(evt.target).forEach(function (box) { box.checked = on; });
    }
    syncToggles(table);
  });
  document.addEventListener("input", function (evt) {
    var box = closest(evt.target, "input[data-matrix-filter]");
    var table = box && document.getElementById(box.getAttribute("aria-controls"));
    if (table) { filterMatrix(table, box.value); }
  });

  // <a data-pick="f-user" data-value="…">: a match listed under a search field (the explain page's
  // pickers) puts its value into that field instead of following its link (which, without script,
  // asks again with it), then moves on to the next field.
  document.addEventListener("click", function (evt) {
    var pick = closest(evt.target, "a[data-pick]");
    var input = pick && document.getElementById(pick.getAttribute("data-pick"));
    if (!input) { return; }
    evt.preventDefault();
    input.value = pick.getAttribute("data-value");
    input.setAttribute("data-picked", input.value);
    input.removeAttribute("aria-invalid");
    if (window.htmx) { window.htmx.trigger(input, "htmx:abort"); }  // a search still on its way
    var box = pick.closest(".choices-box");
    if (box) { box.textContent = ""; }
    var fields = Array.prototype.filter.call(input.form.elements, function (el) {
      return el.tagName === "BUTTON" || (el.type === "search" && !el.value);
    });
    if (fields.length) { fields[0].focus(); }
  });

  // ...and a search the field's typing had scheduled for later must not list the picked value again.
  document.addEventListener("htmx:configRequest", function (evt) {
    var input = evt.detail.elt;
    if (input && input.hasAttribute && input.getAttribute("data-picked") === input.value) {
      evt.preventDefault();
    }
  });

  // An HTMX request refused for an expired CSRF token (app/web/error_pages.py) swaps nothing, so what
  // was typed stays; its answer carries a fresh token, put everywhere the page sends one, and a message
  // for the live flash area. The person sends again.
  document.addEventListener("portal:csrf-expired", function (evt) {
    var token = evt.detail && evt.detail.token;
    if (token) {
      document.body.setAttribute("hx-headers", JSON.stringify({"x-csrftoken": token}));
      document.querySelectorAll("input[name=_csrf_token]").forEach(function (input) { input.value = token; });
    }
    var area = document.getElementById("flash-live");
    if (area && evt.detail && evt.detail.message) {
      area.textContent = evt.detail.message;
      area.hidden = false;
    }
  });
  document.addEventListener("htmx:afterRequest", function (evt) {
    var area = document.getElementById("flash-live");
    if (area && evt.detail && evt.detail.successful) { area.hidden = true; }
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

// File fields (app.web.records.files). <div data-dropzone>: files dropped on it go into its file input
// (a single-file input takes the first), and the chosen names show beside it. <form data-upload>: with
// files chosen, the form is sent by XMLHttpRequest so its <progress data-upload-progress> shows the
// upload; the answer (the record page, or the form again with its errors) replaces the page's body and
// the address follows it. A file over its input's data-max-size is refused before sending, at its field.
(function () {
  "use strict";
  if (window.portalUploads) { return; }
  window.portalUploads = true;

  function zoneOf(target) { return target && target.closest ? target.closest("[data-dropzone]") : null; }

  function showNames(input) {
    var zone = zoneOf(input);
    var out = zone ? zone.querySelector("[data-file-names]") : null;
    if (out) { out.textContent = Array.prototype.map.call(input.files, function (f) { return f.name; }).join(", "); }
    var field = input.closest(".field");
    var error = field ? field.querySelector("[data-file-error]") : null;
    var max = parseInt(input.getAttribute("data-max-size") || "0", 10);
    var big = Array.prototype.some.call(input.files, function (f) { return max > 0 && f.size > max; });
    if (error) { error.hidden = !big; }
    if (big) { input.setAttribute("aria-invalid", "true"); } else { input.removeAttribute("aria-invalid"); }
    return big;
  }

  ["dragenter", "dragover"].forEach(function (name) {
    document.addEventListener(name, function (evt) {
      var zone = zoneOf(evt.target);
      if (zone) { evt.preventDefault(); zone.classList.add("over"); }
    });
  });
  document.addEventListener("dragleave", function (evt) {
    var zone = zoneOf(evt.target);
    if (zone && !zone.contains(evt.relatedTarget)) { zone.classList.remove("over"); }
  });
  document.addEventListener("drop", function (evt) {
    var zone = zoneOf(evt.target);
    var input = zone ? zone.querySelector("input[type=file]") : null;
    if (!input || !evt.dataTransfer || !window.DataTransfer) { return; }
    evt.preventDefault();
    zone.classList.remove("over");
    var chosen = new DataTransfer();
    var files = evt.dataTransfer.files;
    for (var i = 0; i < files.length && (input.multiple || i < 1); i++) { chosen.items.add(files[i]); }
    input.files = chosen.files;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  });
  document.addEventListener("change", function (evt) {
    if (zoneOf(evt.target) && evt.target.type === "file") { showNames(evt.target); }
  });

  document.addEventListener("submit", function (evt) {
    var form = evt.target && evt.target.closest ? evt.target.closest("form[data-upload]") : null;
    if (!form || evt.defaultPrevented || !window.FormData || !window.DOMParser) { return; }
    var inputs = Array.prototype.slice.call(form.querySelectorAll("input[type=file]"));
    var refused = inputs.filter(showNames);
    if (refused.length) { evt.preventDefault(); refused[0].focus(); return; }
    if (!inputs.some(function (input) { return input.files.length > 0; })) { return; }  // a plain submit
    evt.preventDefault();
    var data;
    try { data = new FormData(form, evt.submitter || undefined); } catch (e) { data = new FormData(form); }
    var bar = form.querySelector("[data-upload-progress]");
    var buttons = form.querySelectorAll("button[type=submit]");
    buttons.forEach(function (b) { b.disabled = true; });
    if (bar) { bar.hidden = false; bar.value = 0; }
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.upload.addEventListener("progress", function (e) {
      if (bar && e.lengthComputable) { bar.value = Math.round(100 * e.loaded / e.total); }
    });
    xhr.addEventListener("load", function () {
      if (bar) { bar.value = 100; }  // sent (a fast upload may report no progress of its own)
      var type = xhr.getResponseHeader("content-type") || "";
      var doc = type.indexOf("text/html") === 0 ? new DOMParser().parseFromString(xhr.responseText, "text/html") : null;
      if (!doc || !doc.getElementById("main")) { window.location = xhr.responseURL || form.action; return; }
      // The whole body: the header's forms (language, tenant) carry the page's address too.
      document.body.replaceWith(document.adoptNode(doc.body));
      document.title = doc.title;
      if (xhr.responseURL && xhr.responseURL !== window.location.href) {
        window.history.pushState(null, "", xhr.responseURL);
      }
      window.scrollTo(0, 0);
      if (window.htmx) { window.htmx.process(document.body); }
    });
    xhr.addEventListener("error", function () {
      buttons.forEach(function (b) { b.disabled = false; });
      if (bar) { bar.hidden = true; }
    });
    xhr.send(data);
  });
})();
