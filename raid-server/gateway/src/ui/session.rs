//! Logging in to the dashboard, and who is logged in.
//!
//! `rai dashboard` signs a one-time link ([`rai_common::login_link`]) with the staff member's key; `GET /ui/login`
//! checks it against the registry (a staff role, not revoked, this gateway's host, in time, its nonce unused) and
//! trades it for a session: a random token in a cookie that is `HttpOnly` (no script reads it), `SameSite=Strict`
//! (no other site's page sends it), `Secure` whenever the gateway serves TLS (it serves plain HTTP only on
//! loopback), scoped to `/ui` and short-lived. Every page re-reads the account, so a revocation or a role change
//! holds from the next click. A state-changing request (cancel, log out) must also carry the session's CSRF token
//! in its form and, when the browser sends one, an `Origin` of this gateway.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use rai_common::login_link::{self, LoginLink};

use super::page::{Page, error_page};
use crate::Gateway;
use crate::auth::Caller;

/// The session cookie's name.
pub const COOKIE: &str = "rai_ui";

/// How long a dashboard session lasts.
pub const LIFETIME: Duration = Duration::from_secs(3600);

/// A logged-in staff member.
pub struct StaffSession {
    pub caller: Caller,
    pub token: String,
    pub csrf: String,
}

impl StaffSession {
    /// Who a page is drawn for.
    pub fn viewer(&self) -> super::page::Viewer {
        super::page::Viewer {
            user: self.caller.user.clone(),
            csrf: self.csrf.clone(),
        }
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The host the browser addressed (`name:port`), which a login link is signed for and a form's `Origin` must name.
///
/// HTTP/2 carries it as the `:authority` pseudo-header, which hyper puts in the request's URI, and no `Host`
/// header; HTTP/1.1 carries a `Host` header and a URI with only a path. Reading the URI first, then `Host`, gives
/// the same answer under both (issue 26: over HTTPS, where browsers speak HTTP/2, every login was refused).
pub struct RequestHost(pub String);

impl RequestHost {
    fn of(parts: &Parts) -> RequestHost {
        let host = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        RequestHost(host)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestHost {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<RequestHost, Self::Rejection> {
        Ok(RequestHost::of(parts))
    }
}

impl FromRequestParts<Arc<Gateway>> for StaffSession {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        gateway: &Arc<Gateway>,
    ) -> Result<StaffSession, Response> {
        let not_logged_in = || {
            error_page(
                StatusCode::UNAUTHORIZED,
                "Not logged in",
                "Run `rai dashboard` to open a new session (sessions last an hour).",
            )
        };
        let token = cookie(&parts.headers, COOKIE).ok_or_else(not_logged_in)?;
        let (user, csrf) = gateway
            .bus
            .session(&token)
            .await
            .map_err(|e| {
                crate::metrics::metrics().backend_error(&e);
                error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Redis is unreachable",
                    "The dashboard cannot read its sessions right now; try again in a minute.",
                )
            })?
            .ok_or_else(not_logged_in)?;
        let account = gateway
            .registry
            .current()
            .get(&user)
            .filter(|a| a.revoked.is_none())
            .cloned()
            .ok_or_else(not_logged_in)?;
        let caller = Caller {
            user: account.username,
            team: account.team,
            role: account.role,
        };
        if !caller.is_staff() {
            return Err(students_refused());
        }
        Ok(StaffSession {
            caller,
            token,
            csrf,
        })
    }
}

fn students_refused() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "For course staff only",
        "The dashboard is for TAs, instructors and admins. Students follow their jobs with `rai status`, \
         `rai logs` and `rai history`.",
    )
}

impl StaffSession {
    /// Whether a state-changing request carries this session's CSRF token in its form and, when the browser says
    /// where it comes from, comes from a page of this gateway.
    pub fn form_is_ours(&self, host: &RequestHost, headers: &HeaderMap, csrf: &str) -> bool {
        let host = host.0.as_str();
        let origin_ok = headers
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .is_none_or(|o| o.split_once("://").is_some_and(|(_, h)| h == host));
        let token_ok = csrf.len() == self.csrf.len()
            && csrf
                .bytes()
                .zip(self.csrf.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        origin_ok && token_ok
    }
}

/// The answer to a form that is not [`StaffSession::form_is_ours`].
pub fn foreign_form() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "Refused",
        "This request did not come from a dashboard page of this session; reload the page and try again.",
    )
}

/// The page when Redis, which keeps the sessions, cannot be reached.
fn no_session(e: &rai_backends::errors::EventError) -> Response {
    crate::metrics::metrics().backend_error(e);
    tracing::error!(error = %e, "cannot open a dashboard session");
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Redis is unreachable",
        "The dashboard cannot open a session right now; try again in a minute.",
    )
}

/// `GET /ui/login?user&exp&nonce&sig`: trades a one-time link for a session cookie.
pub async fn login(
    State(gateway): State<Arc<Gateway>>,
    RequestHost(host): RequestHost,
    Query(link): Query<LoginLink>,
) -> Response {
    let refuse = |status: StatusCode, why: String| {
        crate::metrics::metrics().auth_failures.inc();
        tracing::info!(user = %link.user, reason = %why, "refused a dashboard login");
        error_page(status, "Cannot log in", &why)
    };
    let Some(account) = gateway
        .registry
        .current()
        .get(&link.user)
        .filter(|a| a.revoked.is_none())
        .cloned()
    else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            format!(
                "no active account \"{}\"; ask the course's admin",
                link.user
            ),
        );
    };
    let key = match account.verifying_key() {
        Ok(k) => k,
        Err(e) => return refuse(StatusCode::UNAUTHORIZED, e.to_string()),
    };
    if let Err(e) = link.verify(&key, &host, chrono::Utc::now()) {
        return refuse(StatusCode::UNAUTHORIZED, e.to_string());
    }
    if matches!(account.role, rai_common::account::Role::Student) {
        crate::metrics::metrics().auth_failures.inc();
        return students_refused();
    }
    match gateway
        .bus
        .use_link_once(&link.nonce, login_link::MAX_LIFETIME * 2)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "this login link was used already; run `rai dashboard` again".into(),
            );
        }
        Err(e) => return no_session(&e),
    }
    let (token, _) = match gateway.bus.open_session(&account.username, LIFETIME).await {
        Ok(s) => s,
        Err(e) => return no_session(&e),
    };
    tracing::info!(user = %account.username, "opened a dashboard session");
    let secure = if gateway.config.gateway.tls_cert.is_some() {
        "; Secure"
    } else {
        ""
    };
    let set = format!(
        "{COOKIE}={token}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        LIFETIME.as_secs()
    );
    ([(header::SET_COOKIE, set)], Redirect::to("/ui")).into_response()
}

#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// `POST /ui/logout`.
pub async fn logout(
    State(gateway): State<Arc<Gateway>>,
    session: StaffSession,
    host: RequestHost,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if !session.form_is_ours(&host, &headers, &form.csrf) {
        return foreign_form();
    }
    let _ = gateway.bus.close_session(&session.token).await;
    let clear = format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0");
    let page = Page::new("Logged out", None).render(
        "message.html",
        minijinja::context! { title => "Logged out", text => "Run `rai dashboard` to log in again." },
    );
    ([(header::SET_COOKIE, clear)], page).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_must_carry_the_token_and_come_from_this_gateway() {
        let session = StaffSession {
            caller: Caller {
                user: "ta1".into(),
                team: String::new(),
                role: rai_common::account::Role::Ta,
            },
            token: "t".into(),
            csrf: "c0ffee".into(),
        };
        let host = RequestHost("gw.example.edu:8443".into());
        let mut h = HeaderMap::new();
        assert!(session.form_is_ours(&host, &h, "c0ffee"));
        assert!(!session.form_is_ours(&host, &h, "c0ffef"));
        assert!(!session.form_is_ours(&host, &h, ""));
        h.insert(
            header::ORIGIN,
            "https://gw.example.edu:8443".parse().unwrap(),
        );
        assert!(session.form_is_ours(&host, &h, "c0ffee"));
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!session.form_is_ours(&host, &h, "c0ffee"));
    }

    #[test]
    fn the_host_is_read_from_the_authority_under_http2_and_from_host_under_http1() {
        let h2 = axum::http::Request::get("https://gw.example.edu:8443/ui/login")
            .version(axum::http::Version::HTTP_2)
            .body(())
            .unwrap();
        assert_eq!(RequestHost::of(&h2.into_parts().0).0, "gw.example.edu:8443");
        let h1 = axum::http::Request::get("/ui/login")
            .header(header::HOST, "gw.example.edu:8443")
            .body(())
            .unwrap();
        assert_eq!(RequestHost::of(&h1.into_parts().0).0, "gw.example.edu:8443");
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "a=1; rai_ui=abc".parse().unwrap());
        h.append(header::COOKIE, "b=2".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
