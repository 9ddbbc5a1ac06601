//! `rai dashboard` (staff): a one-time link to the gateway's staff dashboard, signed with your own key, opened in
//! the browser (or printed with `--print`, or when there is no display). The link works once, for two minutes, on
//! this gateway only; the page it opens lasts an hour.

use rai_common::account::Role;
use rai_common::login_link::LoginLink;

use crate::cli::GlobalArgs;
use crate::context;
use crate::exit;

/// The link to the dashboard of the gateway at `gateway`, for `user`.
pub fn link(
    key: &rai_common::account::SigningKey,
    user: &str,
    gateway: &str,
) -> anyhow::Result<String> {
    let url = url::Url::parse(gateway)
        .map_err(|e| anyhow::anyhow!("client.gateway {gateway:?} is not a URL: {e}"))?;
    // The Host header a browser sends for this URL: the port only when it is not the scheme's default.
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    Ok(LoginLink::sign(key, user, &host, chrono::Utc::now()).url(gateway))
}

pub async fn run(global: &GlobalArgs, print: bool) -> anyhow::Result<u8> {
    let session = context::session(global)?;
    let me = session.client.whoami().await?;
    if me.role == Role::Student {
        eprintln!(
            "✱ The dashboard is for course staff; your account is a student's. Follow your jobs with `rai history`, \
             `rai status ID` and `rai logs ID`."
        );
        return Ok(exit::USAGE);
    }
    let gateway = session.config.client.gateway.clone().ok_or_else(|| {
        anyhow::anyhow!("client.gateway is not set; ask your course staff for the config")
    })?;
    let url = link(&session.key, &me.user, &gateway)?;
    if print || !opened(&url) {
        println!("{url}");
        eprintln!("✱ Open this link within two minutes; it works once.");
    } else {
        eprintln!("✱ Opened the dashboard in your browser.");
    }
    Ok(exit::OK)
}

/// Opens `url` in the desktop's browser; false when there is none.
fn opened(url: &str) -> bool {
    if !crate::terminal::stdout_is_terminal() {
        return false;
    }
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
            return false;
        }
        "xdg-open"
    };
    std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_is_signed_for_the_host_a_browser_sends() {
        let key = rai_common::account::generate_signing_key();
        let at = |gateway: &str, host: &str| {
            let url = link(&key, "ta1", gateway).unwrap();
            let query = url.split_once('?').unwrap().1;
            let fields: std::collections::HashMap<String, String> =
                url::form_urlencoded::parse(query.as_bytes())
                    .into_owned()
                    .collect();
            let parsed = LoginLink {
                user: fields["user"].clone(),
                exp: fields["exp"].parse().unwrap(),
                nonce: fields["nonce"].clone(),
                sig: fields["sig"].clone(),
            };
            parsed.verify(&key.verifying_key(), host, chrono::Utc::now())
        };
        assert_eq!(at("https://gw.example.edu", "gw.example.edu"), Ok(()));
        assert_eq!(at("https://gw.example.edu:443/", "gw.example.edu"), Ok(()));
        assert_eq!(at("http://127.0.0.1:8080", "127.0.0.1:8080"), Ok(()));
        assert!(at("http://127.0.0.1:8080", "127.0.0.1:9090").is_err());
    }
}
