// Starts Swagger UI on the API's own document: nothing is fetched from anywhere else (no
// validator badge, no CDN); the URL is relative, so a reverse proxy's path prefix is kept.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
