//! The staff dashboard in a real browser: chromium, driven over WebDriver (chromedriver from deploy/local). A TA
//! logs in with `rai dashboard`'s one-time link, watches a running job's lines arrive, cancels it from the page and
//! sees it end, watches the queue depth move, and finds a graded submission on its assignment's page; a student's
//! link, a reused link and a form without the session's CSRF token are refused.
//!
//! With `RAI_SCREENSHOTS=DIR` the test saves a screenshot of each page there (docs/dashboard/ holds the ones
//! docs/admin.md shows).

use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use rai_testkit::stack::{Kind, Options, Stack, job_id, project, text};

/// Chromium over WebDriver. The gateway serves HTTPS with the course's test CA, which the browser is told to accept
/// (a course's staff install its CA, or the gateway has a public certificate); browsers speak HTTP/2 over TLS
/// unless `http1` turns it off.
pub(crate) async fn browser(http1: bool) -> Client {
    let mut caps = serde_json::Map::new();
    let mut args = vec![
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ];
    if http1 {
        args.push("--disable-http2");
    }
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({ "args": args }),
    );
    caps.insert("acceptInsecureCerts".into(), serde_json::json!(true));
    ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&rai_testkit::env::webdriver())
        .await
        .expect("chromedriver answers (deploy/local/stack.sh up starts it)")
}

async fn screenshot(b: &Client, name: &str) {
    if let Ok(dir) = std::env::var("RAI_SCREENSHOTS") {
        let png = b.screenshot().await.unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

pub(crate) async fn body(b: &Client) -> String {
    b.find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits until the text of `css` satisfies `ok`; loads `reload` again before each look when given (for pages that
/// do not update themselves).
async fn wait_for(
    b: &Client,
    reload: Option<&str>,
    css: &str,
    what: &str,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(url) = reload {
            b.goto(url).await.unwrap();
        }
        if let Ok(e) = b.find(Locator::Css(css)).await
            && let Ok(t) = e.text().await
            && ok(&t)
        {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: never seen; the page says:\n{}",
            body(b).await
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn wait_text(b: &Client, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    wait_for(b, None, css, what, ok).await
}

async fn wait_page(
    b: &Client,
    url: &str,
    css: &str,
    what: &str,
    ok: impl Fn(&str) -> bool,
) -> String {
    wait_for(b, Some(url), css, what, ok).await
}

/// The protocol the browser used for the page it shows ("h2", "http/1.1").
async fn protocol(b: &Client) -> String {
    b.execute(
        "return performance.getEntriesByType('navigation')[0].nextHopProtocol",
        vec![],
    )
    .await
    .unwrap()
    .as_str()
    .unwrap_or_default()
    .to_string()
}

/// Student 0 submits a job printing a line every half second for a minute; returns its id.
async fn submit_long(s: &Stack) -> String {
    let long = project(
        &["for i in $(seq 1 120); do echo line $i; sleep 0.5; done"],
        &[],
    );
    let out = s
        .rai(
            0,
            &["submit", "--detach", "-p", long.path().to_str().unwrap()],
        )
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    job_id(&text(&out.stderr))
}

pub(crate) async fn link(s: &Stack, user: usize) -> String {
    let out = s.rai(user, &["dashboard", "--print"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn staff_watch_cancel_and_grade_in_a_real_browser() {
    let (_course, extra) =
        rai_testkit::stack::course_file("  m1:\n    due: {due}\n    ranking: { command: 1 }\n");
    let s = Stack::start(
        Kind::Local,
        Options {
            users: 2,
            staff: &[1],
            concurrency: 1,
            gateway_extra: extra,
            ..Options::default()
        },
    )
    .await;
    assert!(s.gateways[0].url.starts_with("https://"));
    let b = browser(false).await;

    // A student cannot get a link from rai, and one signed with a student's key by hand is refused.
    let out = s.rai(0, &["dashboard", "--print"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("for course staff"),
        "{}",
        text(&out.stderr)
    );
    let profile = rai_common::account::Profile::load(&s.home(0).join(".rai_profile")).unwrap();
    let key = profile.signing_key("student0").unwrap();
    let forged =
        rai_client::commands::dashboard::link(&key, "student0", &s.gateways[0].url).unwrap();
    b.goto(&forged).await.unwrap();
    assert!(
        body(&b).await.contains("For course staff only"),
        "{}",
        body(&b).await
    );
    b.goto(&format!("{}/ui", s.gateways[0].url)).await.unwrap();
    assert!(
        body(&b).await.contains("Not logged in"),
        "{}",
        body(&b).await
    );

    // The TA logs in; the link works once.
    let login = link(&s, 1).await;
    b.goto(&login).await.unwrap();
    wait_text(&b, "h1", "the overview", |t| t == "Overview").await;
    assert_eq!(
        protocol(&b).await,
        "h2",
        "the browser speaks HTTP/2 over TLS"
    );
    let worker = &s.workers[0].name;
    wait_text(&b, "#workers", "the worker", |t| {
        t.contains(worker.as_str()) && t.contains("up")
    })
    .await;
    let cookies = b.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c.name() == "rai_ui")
        .expect("a session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(
        session.same_site().map(|s| s.to_string()).as_deref(),
        Some("Strict")
    );
    screenshot(&b, "overview").await;

    // A long job runs (the only slot), a quick one waits behind it: the overview's depth shows it.
    let running = submit_long(&s).await;
    let quick = project(&["echo graded"], &[]);
    let out = s
        .rai(
            0,
            &[
                "submit",
                "--detach",
                "--submit=m1",
                "-p",
                quick.path().to_str().unwrap(),
            ],
        )
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let waiting = job_id(&text(&out.stderr));
    let q = format!("#queues tr[data-queue=\"{}\"] .waiting", s.queue);
    wait_text(&b, &q, "one job waiting", |t| t == "1").await;

    // Its lines arrive live on the job's page; cancel from the page ends it.
    b.goto(&format!("{}/ui/jobs/{running}", s.gateways[0].url))
        .await
        .unwrap();
    wait_text(&b, "#log", "live lines", |t| t.contains("line 3")).await;
    screenshot(&b, "job").await;
    b.find(Locator::Css("#cancel button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&b, "#ended", "the end of the cancelled job", |t| {
        t.contains("cancelled")
    })
    .await;
    wait_text(&b, "#status", "the status", |t| t == "cancelled").await;

    // The waiting job runs once the slot is free: the depth goes back to 0.
    b.goto(&format!("{}/ui", s.gateways[0].url)).await.unwrap();
    wait_text(&b, &q, "no job waiting", |t| t == "0").await;

    // The job list, filtered; the assignment's page with the graded submission.
    let url = |path: &str| format!("{}{path}", s.gateways[0].url);
    let listed = wait_page(
        &b,
        &url("/ui/jobs?status=cancelled"),
        "#jobs",
        "the cancelled job",
        |t| t.contains(&running),
    )
    .await;
    assert!(!listed.contains(&waiting), "{listed}");
    wait_page(&b, &url("/ui/jobs"), "#jobs", "both jobs", |t| {
        t.contains(&running) && t.contains(&waiting)
    })
    .await;
    screenshot(&b, "jobs").await;
    wait_page(
        &b,
        &url("/ui/assignments/m1"),
        "#submissions",
        "the submission",
        |t| t.contains(&waiting) && t.contains("succeeded"),
    )
    .await;
    wait_text(&b, "#leaderboard", "the ranked team", |t| {
        t.contains("team")
    })
    .await;
    screenshot(&b, "assignment").await;

    // A form without the session's CSRF token is refused, even with the session cookie.
    let cookie = format!("rai_ui={}", session.value());
    let forged_cancel = s
        .http()
        .post(format!("{}/ui/jobs/{waiting}/cancel", s.gateways[0].url))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=guess")
        .send()
        .await
        .unwrap();
    assert_eq!(forged_cancel.status(), 403);

    // The link was spent.
    b.delete_all_cookies().await.unwrap();
    b.goto(&login).await.unwrap();
    assert!(
        body(&b).await.contains("used already"),
        "{}",
        body(&b).await
    );
    // Every page and action asks who is there: without the cookie each is refused; with it, once the account is no
    // longer staff (the registry changed), each is refused too.
    let routes = [
        ("GET", "/ui".to_string()),
        ("GET", "/ui/queues".to_string()),
        ("GET", "/ui/jobs".to_string()),
        ("GET", format!("/ui/jobs/{running}")),
        ("GET", format!("/ui/jobs/{running}/events")),
        ("GET", "/ui/assignments/m1".to_string()),
        ("GET", "/ui/usage".to_string()),
        ("GET", "/ui/deadletters".to_string()),
        ("POST", format!("/ui/deadletters/{waiting}")),
        ("POST", format!("/ui/jobs/{waiting}/cancel")),
        ("POST", "/ui/logout".to_string()),
    ];
    let http = s.http();
    let ask = |method: &str, path: &str, cookie: Option<&str>| {
        let mut r = http.request(method.parse().unwrap(), url(path));
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        r.header("content-type", "application/x-www-form-urlencoded")
            .body("csrf=")
            .send()
    };
    for (method, path) in &routes {
        let status = ask(method, path, None).await.unwrap().status();
        assert_eq!(status, 401, "{method} {path} without a session");
    }
    let registry_file = s.dir.path().join("registry.yml");
    let mut registry = rai_common::account::Registry::load(&registry_file).unwrap();
    registry.get_mut("student1").unwrap().role = rai_common::account::Role::Student;
    std::fs::write(&registry_file, registry.to_yaml()).unwrap();
    for (method, path) in &routes {
        let status = ask(method, path, Some(&cookie)).await.unwrap().status();
        assert_eq!(
            status, 403,
            "{method} {path} by a session whose user is a student now"
        );
    }

    b.close().await.unwrap();
}

/// The same login, live log and cancel with a browser that speaks HTTP/1.1 (older proxies, `--disable-http2`): the
/// host the link is signed for comes from the `Host` header there, from `:authority` under HTTP/2.
#[tokio::test(flavor = "multi_thread")]
async fn staff_log_in_watch_and_cancel_over_http1() {
    let s = Stack::start(
        Kind::Local,
        Options {
            users: 2,
            staff: &[1],
            concurrency: 1,
            ..Options::default()
        },
    )
    .await;
    let b = browser(true).await;
    b.goto(&link(&s, 1).await).await.unwrap();
    wait_text(&b, "h1", "the overview", |t| t == "Overview").await;
    assert_eq!(protocol(&b).await, "http/1.1");
    let running = submit_long(&s).await;
    b.goto(&format!("{}/ui/jobs/{running}", s.gateways[0].url))
        .await
        .unwrap();
    wait_text(&b, "#log", "live lines", |t| t.contains("line 3")).await;
    b.find(Locator::Css("#cancel button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&b, "#status", "the status", |t| t == "cancelled").await;
    b.close().await.unwrap();
}
