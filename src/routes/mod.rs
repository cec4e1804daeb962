//! HTTP routes. Each handler turns HTTP into domain calls and back; nothing below
//! this module knows about HTTP.

mod charge;
mod health;
mod search;

use actix_web::{HttpResponse, web};

use crate::error::ApiError;

pub use charge::{IDEMPOTENCY_HEADER, REPLAYED_HEADER};

/// Lightspeed is configured with the base `{host}/lightspeed`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/lightspeed")
            .service(
                web::resource("/charge")
                    .route(web::post().to(charge::charge))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/search")
                    .route(web::get().to(search::search))
                    .default_service(web::to(method_not_allowed)),
            ),
    )
    .route("/healthz", web::get().to(health::healthz))
    .route("/readyz", web::get().to(health::readyz))
    .route("/metrics", web::get().to(health::metrics))
    .default_service(web::to(not_found));
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

/// Query strings that do not parse answer in our error format too.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|e, _| ApiError::invalid("query", e.to_string()).into())
}
