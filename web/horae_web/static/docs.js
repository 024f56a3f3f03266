// Starts Swagger UI on /docs with horae's OpenAPI document (a URL relative to the page: proxies keep working).
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: new URL("v1/openapi.json", document.baseURI).href,
    dom_id: "#swagger-ui",
    deepLinking: true,
  });
});
