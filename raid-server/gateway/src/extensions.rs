//! Extensions: `GET /v1/extensions/{assignment}` lists the deadlines the course file moved for one user or team
//! (staff only), each name looked up in the registry so a typo shows as `unknown` instead of silently extending no
//! one. Deadlines themselves are applied where a submission is judged ([`super::submissions`]) and where a student's
//! results are cut to what they may see ([`super::results`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use rai_common::api::{AssignmentDeadline, Extension, Extensions, Grantee};
use rai_common::course::{Assignment, Deadline};

use crate::auth::Caller;
use crate::{ApiError, Gateway};

/// `deadline` of `a` as the API says it.
pub fn shown(a: &Assignment, deadline: Deadline) -> AssignmentDeadline {
    AssignmentDeadline {
        assignment: a.name.clone(),
        title: a.title.clone(),
        text: a.describe(&deadline),
        deadline,
    }
}

/// `GET /v1/extensions/{assignment}`: staff.
pub async fn list(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Extensions>, ApiError> {
    if !caller.is_staff() {
        return Err(ApiError::forbidden(
            "extensions are listed for course staff; `rai submitted` shows your own deadline",
        ));
    }
    let course = gateway
        .course
        .as_ref()
        .map(|c| c.current())
        .ok_or_else(|| {
            ApiError::bad_request("this course has no assignments (the gateway has no course file)")
        })?;
    let a = course.assignment(&name)?;
    let registry = gateway.registry.current();
    let grantee = |name: &str| {
        if registry.get(name).is_some() {
            Grantee::User
        } else if registry.users.iter().any(|u| u.team == name) {
            Grantee::Team
        } else {
            Grantee::Unknown
        }
    };
    let extensions = a
        .extensions
        .iter()
        .map(|(who, d)| Extension {
            name: who.clone(),
            grantee: grantee(who),
            deadline: shown(a, d.clone()),
        })
        .collect();
    Ok(Json(Extensions {
        course: shown(a, a.course_deadline()),
        extensions,
    }))
}
