//! The course's datasets (issue 31): `GET /v1/datasets` lists what `gateway.datasets` offers, and [`check`]
//! refuses a project that asks for another, at its upload's declaration (before a byte is stored) and again at
//! its submission (the signed build file is what the worker reads).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use rai_common::api::{DatasetView, Datasets};

use crate::auth::Caller;
use crate::{ApiError, Gateway};

/// `GET /v1/datasets`: any member of the course.
pub async fn list(State(gateway): State<Arc<Gateway>>, _caller: Caller) -> Json<Datasets> {
    Json(Datasets {
        datasets: gateway
            .config
            .gateway
            .datasets
            .iter()
            .map(|(name, about)| DatasetView {
                name: name.clone(),
                about: about.clone(),
            })
            .collect(),
    })
}

/// Refuses `asked` unless the course offers every one of them, naming those it does offer.
pub fn check<'a>(
    gateway: &Gateway,
    asked: impl IntoIterator<Item = &'a str>,
) -> Result<(), ApiError> {
    let offered = &gateway.config.gateway.datasets;
    let missing: Vec<&str> = asked
        .into_iter()
        .filter(|name| !offered.contains_key(*name))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let names = if offered.is_empty() {
        "this course offers none".to_string()
    } else {
        format!(
            "it offers: {}",
            offered.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    };
    Err(ApiError::bad_request(format!(
        "the build file asks for dataset{} {}, which the course does not offer ({names}; `rai datasets` lists \
         them); fix resources.datasets",
        if missing.len() == 1 { "" } else { "s" },
        missing
            .iter()
            .map(|m| format!("\"{m}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )))
}
