//! Rendering: the dashboard's templates (minijinja, HTML auto-escaped, compiled into the binary), its one stylesheet
//! and script, served by the gateway itself (no CDN: the dashboard works on a course network cut off from the
//! internet, and no third party sees staff pages).

use std::sync::LazyLock;

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, Value, context};

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // Scores and figures as people write them: 7, not 7.0; 7.25, not 7.250000001.
    env.add_filter("figure", super::chart::figure);
    for (name, text) in [
        ("base.html", include_str!("templates/base.html")),
        ("message.html", include_str!("templates/message.html")),
        ("overview.html", include_str!("templates/overview.html")),
        ("jobs.html", include_str!("templates/jobs.html")),
        ("job.html", include_str!("templates/job.html")),
        ("assignment.html", include_str!("templates/assignment.html")),
        ("usage.html", include_str!("templates/usage.html")),
        (
            "deadletters.html",
            include_str!("templates/deadletters.html"),
        ),
    ] {
        env.add_template(name, text)
            .unwrap_or_else(|e| panic!("the template {name} does not compile: {e}"));
    }
    env
});

/// Who is looking at a page: the signed-in staff member and the form token their forms carry. The session makes it
/// ([`super::session::StaffSession::viewer`]); pages need nothing else of the session.
pub struct Viewer {
    pub user: String,
    pub csrf: String,
}

/// A page about to be rendered: its title and who is looking.
pub struct Page {
    title: String,
    user: Option<String>,
    csrf: Option<String>,
}

impl Page {
    pub fn new(title: &str, viewer: Option<Viewer>) -> Page {
        let (user, csrf) = viewer.map(|v| (v.user, v.csrf)).unzip();
        Page {
            title: title.to_string(),
            user,
            csrf,
        }
    }

    /// The page, as HTML.
    pub fn render(&self, template: &str, values: Value) -> Html<String> {
        let ctx = context! {
            title => self.title,
            user => self.user,
            csrf => self.csrf,
            ..values
        };
        let html = TEMPLATES
            .get_template(template)
            .and_then(|t| t.render(ctx))
            .unwrap_or_else(|e| {
                tracing::error!(template, error = %e, "a dashboard template failed");
                format!("<!doctype html><title>Error</title><p>This page could not be drawn ({template}).</p>")
            });
        Html(html)
    }
}

/// A page that says what went wrong and what to do, with its status.
pub fn error_page(status: StatusCode, title: &str, text: &str) -> Response {
    let page = Page::new(title, None).render("message.html", context! { text => text });
    (status, page).into_response()
}

/// `GET /ui/static/app.css`.
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("static/app.css"),
    )
        .into_response()
}

/// `GET /ui/static/app.js`.
pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("static/app.js"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles_and_escapes_what_students_wrote() {
        let html = Page::new("t", None)
            .render(
                "message.html",
                context! { text => "<script>alert(1)</script>" },
            )
            .0;
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("/ui/static/app.css"));
        for name in [
            "overview.html",
            "jobs.html",
            "job.html",
            "assignment.html",
            "usage.html",
        ] {
            assert!(TEMPLATES.get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn the_assignment_page_draws_scores_as_people_write_them() {
        let sub = serde_json::json!({
            "job": "01kb0000000000000000000000", "assignment": "m1", "team": "a", "user": "alice",
            "accepted_at": "2026-12-05T10:00:00Z", "late": false, "status": "succeeded",
            "ranked_seconds": null, "counts": true, "score": 7.0, "max_score": 10.0,
        });
        // A run without scores has no score keys at all.
        let unscored = serde_json::json!({
            "job": "01kb0000000000000000000001", "assignment": "m1", "team": "c", "user": "carol",
            "accepted_at": "2026-12-05T10:00:00Z", "late": false, "status": "failed",
            "ranked_seconds": null, "counts": true,
        });
        let board = serde_json::json!({
            "assignment": "m1", "command": null, "lower_is_better": true, "by_score": true, "unranked": 0,
            "rows": [{"rank": 1, "team": "a", "yours": false, "seconds": 1.5, "score": 7.25}],
        });
        let html = TEMPLATES
            .get_template("assignment.html")
            .unwrap()
            .render(context! {
                title => "m1", assignment => "m1", submissions => vec![sub, unscored], board => board,
                scored => 1, teams => 1, mean => "7", median => "7", max_score => "10",
                histogram => "<svg id=\"histogram\"></svg>",
            })
            .unwrap();
        assert!(html.contains("<td>7 / 10</td>"), "{html}");
        assert!(html.contains("<td>7.25</td>"), "{html}");
        assert!(html.contains("<svg id=\"histogram\">"), "{html}");
    }
}
