// Starts Swagger UI on /api/docs. A static file because the CSP refuses inline scripts; the OpenAPI
// address comes from the page (data-openapi-url), so nothing here is written by the server.
(function () {
  const root = document.getElementById("swagger-ui");
  if (!root || typeof SwaggerUIBundle === "undefined") return;
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    presets: [SwaggerUIBundle.presets.apis],
    // no badge from the online validator: it would send the document to swagger.io
    validatorUrl: null,
  });
})();
