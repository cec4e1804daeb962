//! HTTP routes. Each handler turns HTTP into domain calls and back; nothing below
//! this module knows about HTTP.

mod charge;
mod health;
mod search;

use actix_web::{HttpResponse, guard, web};

use crate::error::ApiError;

pub use charge::{IDEMPOTENCY_HEADER, REPLAYED_HEADER};

/// Lightspeed is configured with the base `{host}/lightspeed`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/lightspeed")
            .service(
                web::resource("/charge")
                    .route(web::post().to(charge::charge))
                    .default_service(web::to(|| allow_only("POST"))),
            )
            .service(
                web::resource("/search")
                    .route(web::get().to(search::search))
                    .default_service(web::to(|| allow_only("GET"))),
            ),
    )
    .service(read_only("/healthz").route(get_or_head().to(health::healthz)))
    .service(read_only("/readyz").route(get_or_head().to(health::readyz)))
    .service(read_only("/metrics").route(get_or_head().to(health::metrics)))
    .default_service(web::to(not_found));
}

/// Probes (load balancers, Kubernetes) may ask with HEAD: the same answer as
/// GET, the body left off by the HTTP layer.
fn get_or_head() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

fn read_only(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|| allow_only("GET, HEAD")))
}

/// 405 with the `Allow` header RFC 9110 asks for.
async fn allow_only(allow: &'static str) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(allow))
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// Query strings that do not parse answer in our error format too.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|e, _| ApiError::invalid("query", e.to_string()).into())
}
