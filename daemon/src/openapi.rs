//! The OpenAPI document (generated from the handlers' annotations) and a self-contained `/docs`
//! page that renders it without fetching anything from the internet.

use actix_web::HttpResponse;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::api;

/// The REST API's description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "PodWrangler daemon API",
        description = "Run shell commands in pods over long-lived sessions; pods, command history and fan-out. \
The Unix socket needs no credentials (callers are recorded by uid); TCP needs `Authorization: Bearer <key>` \
with a named API key whose scope allows the route: read (GET), exec (running commands) or admin (changing pods); \
403 `forbidden` otherwise. Every command and pod change records who asked. \
Errors are `application/problem+json` with a stable `code`."
    ),
    paths(
        api::health::health,
        api::pods::list_pods,
        api::pods::create_pod,
        api::pods::get_pod,
        api::pods::update_pod,
        api::pods::delete_pod,
        api::pods::import_pods,
        api::exec::exec_pod,
        api::exec::fan_out,
        api::commands::list_commands,
        api::commands::get_command,
        api::commands::list_audit,
        api::commands::cancel_command,
        api::pods::list_clusters,
    ),
    components(schemas(podwrangler::api::Problem, podwrangler::api::PodState)),
    modifiers(&BearerAuth),
    tags(
        (name = "pods", description = "Register, list, update and remove pods"),
        (name = "exec", description = "Run commands in one pod or many"),
        (name = "history", description = "Every command that ran"),
        (name = "daemon", description = "Daemon health"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.info.version = env!("CARGO_PKG_VERSION").to_owned();
    }
}

/// `GET /api/v1/openapi.json`.
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

/// `GET /docs`: lists every operation of the document with its parameters, body and responses.
pub async fn docs_page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(DOCS_HTML)
}

const DOCS_HTML: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>PodWrangler API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem} .op{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.6rem 1rem}
.m{display:inline-block;min-width:4.5rem;font-weight:bold;text-transform:uppercase}
.get{color:#0a7}.post{color:#06c}.patch{color:#a60}.delete{color:#c22}
code,pre{background:#f5f5f5;border-radius:4px;padding:.1rem .3rem} pre{padding:.5rem;overflow:auto}
details summary{cursor:pointer} table{border-collapse:collapse} td{padding:.15rem .6rem;vertical-align:top}
</style></head><body>
<h1 id="title">PodWrangler API</h1><p id="desc"></p>
<p>Machine-readable document: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a></p>
<div id="ops">Loading&hellip;</div>
<script>
const esc = s => String(s ?? "").replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;"}[c]));
const ref = (doc, r) => r && r.$ref ? doc.components.schemas[r.$ref.split("/").pop()] : r;
const schemaName = s => s ? (s.$ref ? s.$ref.split("/").pop() : (s.type === "array" && s.items ? schemaName(s.items) + "[]" : (s.type || ""))) : "";
fetch("/api/v1/openapi.json").then(r => r.json()).then(doc => {
  document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
  document.getElementById("desc").textContent = doc.info.description || "";
  let html = "";
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      html += `<div class="op"><span class="m ${method}">${method}</span> <code>${esc(path)}</code> &mdash; ${esc(op.summary || op.description || "")}`;
      if (op.parameters && op.parameters.length) {
        html += "<table>" + op.parameters.map(p => `<tr><td><code>${esc(p.name)}</code></td><td>${esc(p.in)}</td><td>${esc(schemaName(p.schema))}</td><td>${esc(p.description || "")}</td></tr>`).join("") + "</table>";
      }
      const body = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
      if (body) {
        const s = ref(doc, body.schema);
        html += `<details><summary>Request body: ${esc(schemaName(body.schema))}</summary><pre>${esc(JSON.stringify(s, null, 2))}</pre></details>`;
      }
      html += "<table>" + Object.entries(op.responses || {}).map(([code, r]) => {
        const c = r.content ? Object.values(r.content)[0] : null;
        return `<tr><td><b>${esc(code)}</b></td><td>${esc(r.description)}</td><td>${esc(c ? schemaName(c.schema) : "")}</td></tr>`;
      }).join("") + "</table></div>";
    }
  }
  document.getElementById("ops").innerHTML = html;
}).catch(e => { document.getElementById("ops").textContent = "Cannot load the document: " + e; });
</script></body></html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_lists_every_route() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for p in [
            "/health",
            "/api/v1/pods/",
            "/api/v1/pods/{alias}",
            "/api/v1/pods/{alias}/exec",
            "/api/v1/pods/import",
            "/api/v1/exec",
            "/api/v1/commands",
            "/api/v1/commands/{id}",
        ] {
            assert!(paths.contains_key(p), "missing {p}");
        }
        assert!(doc["components"]["schemas"]["PodCreate"].is_object());
        assert!(doc["components"]["schemas"]["Problem"].is_object());
    }
}
