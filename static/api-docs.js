// The API documentation page (templates/api_docs.html): Swagger UI, vendored under static/vendor.
(function () {
  "use strict";
  function show(url) {
    window.SwaggerUIBundle({
      url: url,
      dom_id: "#swagger-ui",
      deepLinking: false,
      tryItOutEnabled: false,
      persistAuthorization: false,
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var choice = document.getElementById("api-doc-choice");
    if (!choice || !window.SwaggerUIBundle) return;
    show(choice.value);
    choice.addEventListener("change", function () { show(choice.value); });
  });
})();
