// Swagger UI for /openapi.json (served at /docs). It comes from this origin, not a CDN, and
// starts from this file rather than an inline script, so the consoles' CSP holds here too.
/* global SwaggerUIBundle */
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  // The default badge is an image from validator.swagger.io, which img-src refuses.
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
