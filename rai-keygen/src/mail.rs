//! Mailing students their profiles: one letter per student, with their `.rai_profile` attached, over the course's
//! SMTP server (`mail:` in the config; STARTTLS or TLS, the password encrypted with rai-crypto).
//!
//! The letter comes from a template the instructor can change (`mail.template`): a first line `Subject: ...`, a
//! blank line, then the body, with the student's fields as `{{ username }}` and friends; a name the template uses
//! that does not exist is an error before anything is sent, not a blank in 300 letters. `--dry-run` composes every
//! letter and reports it without connecting. Each student gets a line in the report, sent or not and why; one
//! failure does not stop the rest.

use std::path::Path;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use minijinja::{Environment, UndefinedBehavior};
use rai_common::account::{Account, Profile, Registry};
use rai_common::config::{MailConfig, MailSecurity};

use crate::KeygenError;

/// The built-in letter (deploy/mail/profile-letter.txt is a copy to start from).
pub const BUILTIN_TEMPLATE: &str = include_str!("../../deploy/mail/profile-letter.txt");

/// The name the profile is attached under (no leading dot: mail clients hide or mangle dotfiles).
pub const ATTACHMENT_NAME: &str = "rai_profile";

/// A letter's template: its subject line and body.
#[derive(Debug, Clone)]
pub struct Template {
    subject: String,
    body: String,
    source: String,
}

fn invalid(source: &str, message: impl std::fmt::Display) -> KeygenError {
    KeygenError::Mail(format!("the letter template {source}: {message}"))
}

impl Template {
    /// Reads `Subject: ...`, a blank line, then the body.
    pub fn parse(text: &str, source: &str) -> Result<Template, KeygenError> {
        let text = text.replace("\r\n", "\n");
        let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
        let subject = first
            .strip_prefix("Subject:")
            .ok_or_else(|| invalid(source, "its first line must be \"Subject: ...\""))?
            .trim()
            .to_string();
        let body = rest
            .strip_prefix('\n')
            .ok_or_else(|| invalid(source, "a blank line must follow the subject line"))?
            .to_string();
        Ok(Template {
            subject,
            body,
            source: source.to_string(),
        })
    }

    /// The template `mail.template` names, or the built-in one.
    pub fn load(path: Option<&Path>) -> Result<Template, KeygenError> {
        match path {
            None => Template::parse(BUILTIN_TEMPLATE, "(built in)"),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| KeygenError::Io {
                    action: "read the letter template",
                    path: p.to_path_buf(),
                    source,
                })?;
                Template::parse(&text, &p.display().to_string())
            }
        }
    }

    fn render(&self, values: &minijinja::Value) -> Result<(String, String), KeygenError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        let subject = env
            .render_str(&self.subject, values)
            .map_err(|e| invalid(&self.source, e))?;
        let body = env
            .render_str(&self.body, values)
            .map_err(|e| invalid(&self.source, e))?;
        // A subject is one line, whatever a field held.
        Ok((subject.replace(['\r', '\n'], " "), body))
    }
}

/// One student's letter, composed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    pub username: String,
    pub to: String,
    pub subject: String,
    pub body: String,
    /// The profile, as the file `rai-keygen` wrote it.
    pub profile: String,
}

/// Composes `account`'s letter from its profile file.
pub fn compose(
    template: &Template,
    account: &Account,
    profile_text: &str,
    settings: &MailConfig,
    gateway: Option<&str>,
) -> Result<Letter, KeygenError> {
    let profile = Profile::parse(profile_text, &format!("{}'s profile", account.username))?;
    if profile.username != account.username {
        return Err(KeygenError::Mail(format!(
            "the profile file for {} is {}'s",
            account.username, profile.username
        )));
    }
    let values = minijinja::context! {
        username => account.username,
        firstname => profile.firstname,
        lastname => profile.lastname,
        email => account.email,
        team => account.team,
        role => account.role.as_str(),
        course => settings.course,
        gateway => gateway,
    };
    let (subject, body) = template.render(&values)?;
    Ok(Letter {
        username: account.username.clone(),
        to: account.email.clone(),
        subject,
        body,
        profile: profile_text.to_string(),
    })
}

fn mailbox(text: &str, what: &str) -> Result<Mailbox, KeygenError> {
    text.parse()
        .map_err(|e| KeygenError::Mail(format!("{what} \"{text}\" is not an email address ({e})")))
}

/// The MIME message of `letter`: the body as text, the profile attached.
pub fn message(
    letter: &Letter,
    from: &Mailbox,
    reply_to: Option<&Mailbox>,
) -> Result<Message, KeygenError> {
    let to = mailbox(&letter.to, &format!("{}'s email", letter.username))?;
    let mut builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(letter.subject.clone());
    if let Some(r) = reply_to {
        builder = builder.reply_to(r.clone());
    }
    let attachment = Attachment::new(ATTACHMENT_NAME.to_string()).body(
        letter.profile.clone(),
        ContentType::parse("application/x-yaml").expect("a valid content type"),
    );
    builder
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain(letter.body.clone()))
                .singlepart(attachment),
        )
        .map_err(|e| KeygenError::Mail(format!("cannot build {}'s letter: {e}", letter.username)))
}

/// A connection setting to the course's SMTP server.
pub struct Mailer {
    transport: SmtpTransport,
    from: Mailbox,
    reply_to: Option<Mailbox>,
}

impl Mailer {
    /// The transport `settings` describe (nothing is sent yet).
    pub fn new(settings: &MailConfig) -> Result<Mailer, KeygenError> {
        let server = settings.server.as_deref().ok_or_else(|| {
            KeygenError::Mail(
                "mail.server is not set; name the course's SMTP server in the config (docs/instructor.md)".into(),
            )
        })?;
        let from = mailbox(
            settings.from.as_deref().ok_or_else(|| {
                KeygenError::Mail("mail.from is not set; give the sender, such as \"CS 483 Staff <staff@example.edu>\"".into())
            })?,
            "mail.from",
        )?;
        let reply_to = settings
            .reply_to
            .as_deref()
            .map(|r| mailbox(r, "mail.reply_to"))
            .transpose()?;
        let tls = || -> Result<TlsParameters, KeygenError> {
            let mut params = TlsParameters::builder(server.to_string());
            if let Some(ca) = &settings.ca_file {
                let pem = std::fs::read(ca).map_err(|source| KeygenError::Io {
                    action: "read mail.ca_file",
                    path: ca.clone(),
                    source,
                })?;
                let cert = Certificate::from_pem(&pem).map_err(|e| {
                    KeygenError::Mail(format!(
                        "mail.ca_file {} is not a PEM certificate: {e}",
                        ca.display()
                    ))
                })?;
                params = params.add_root_certificate(cert);
            }
            params
                .build_rustls()
                .map_err(|e| KeygenError::Mail(format!("cannot set up TLS for {server}: {e}")))
        };
        let tls = match settings.security {
            MailSecurity::Starttls => Tls::Required(tls()?),
            MailSecurity::Tls => Tls::Wrapper(tls()?),
            MailSecurity::None if rai_common::config::is_loopback_host(server) => Tls::None,
            MailSecurity::None => {
                return Err(KeygenError::Mail(format!(
                    "mail.security is none but {server} is not a loopback address: students' keys would cross the \
                     network in plain text; use starttls (port 587) or tls (port 465)"
                )));
            }
        };
        let mut builder = SmtpTransport::builder_dangerous(server)
            .port(settings.port)
            .tls(tls)
            .timeout(Some(std::time::Duration::from_secs(30)));
        match (&settings.username, &settings.password) {
            (Some(u), Some(p)) => {
                builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
            }
            (None, None) => {}
            _ => {
                return Err(KeygenError::Mail(
                    "set both mail.username and mail.password, or neither".into(),
                ));
            }
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            reply_to,
        })
    }

    /// Sends one letter.
    pub fn send(&self, letter: &Letter) -> Result<(), KeygenError> {
        let message = message(letter, &self.from, self.reply_to.as_ref())?;
        self.transport.send(&message).map(|_| ()).map_err(|e| {
            KeygenError::Mail(format!("the server refused or could not be reached: {e}"))
        })
    }
}

/// What happened to one student's letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// `--dry-run`: composed, not sent.
    Composed {
        subject: String,
        bytes: usize,
    },
    Failed(String),
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailed {
    pub username: String,
    pub email: String,
    pub outcome: Outcome,
}

impl std::fmt::Display for Mailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match &self.outcome {
            Outcome::Sent => "sent".to_string(),
            Outcome::Composed { subject, bytes } => {
                format!("would send \"{subject}\" with a {bytes}-byte profile")
            }
            Outcome::Failed(why) => format!("NOT SENT: {why}"),
        };
        write!(f, "{:<24} {:<32} {what}", self.username, self.email)
    }
}

/// Mails each of `users` (every active user when empty) the profile `<username>.rai_profile` in `profiles`;
/// composes only when `mailer` is `None` (a dry run).
pub fn mail_profiles(
    registry: &Registry,
    users: &[String],
    profiles: &Path,
    template: &Template,
    settings: &MailConfig,
    gateway: Option<&str>,
    mailer: Option<&Mailer>,
) -> Vec<Mailed> {
    // Each user asked for, by account, or by the name the registry does not know.
    let chosen: Vec<(&str, Option<&Account>)> = if users.is_empty() {
        registry
            .users
            .iter()
            .filter(|a| a.revoked.is_none())
            .map(|a| (a.username.as_str(), Some(a)))
            .collect()
    } else {
        users
            .iter()
            .map(|u| (u.as_str(), registry.get(u)))
            .collect()
    };
    chosen
        .into_iter()
        .map(|(name, account)| {
            let account = match account {
                Some(a) => a,
                None => {
                    return Mailed {
                        username: name.to_string(),
                        email: String::new(),
                        outcome: Outcome::Failed("no such user in the registry".into()),
                    };
                }
            };
            let outcome = one(account, profiles, template, settings, gateway, mailer)
                .unwrap_or_else(|e| Outcome::Failed(e.to_string()));
            Mailed {
                username: account.username.clone(),
                email: account.email.clone(),
                outcome,
            }
        })
        .collect()
}

fn one(
    account: &Account,
    profiles: &Path,
    template: &Template,
    settings: &MailConfig,
    gateway: Option<&str>,
    mailer: Option<&Mailer>,
) -> Result<Outcome, KeygenError> {
    if account.revoked.is_some() {
        return Err(KeygenError::Mail("the account is revoked".into()));
    }
    if account.email.is_empty() {
        return Err(KeygenError::Mail("the account has no email address".into()));
    }
    let path = profiles.join(format!("{}.rai_profile", account.username));
    let text = std::fs::read_to_string(&path).map_err(|source| KeygenError::Io {
        action: "read the profile",
        path: path.clone(),
        source,
    })?;
    let letter = compose(template, account, &text, settings, gateway)?;
    match mailer {
        Some(m) => m.send(&letter).map(|()| Outcome::Sent),
        None => Ok(Outcome::Composed {
            subject: letter.subject,
            bytes: letter.profile.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rai_common::account::Role;

    fn settings() -> MailConfig {
        rai_common::Config::defaults().mail
    }

    fn account(name: &str) -> (Account, String) {
        let key = rai_common::account::generate_signing_key();
        let mut profile = Profile::new(&key, name);
        profile.firstname = "Ada".into();
        profile.team.name = "gpu-wizards".into();
        let account = Account {
            username: name.into(),
            email: format!("{name}@example.edu"),
            team: "gpu-wizards".into(),
            role: Role::Student,
            public_key: rai_common::account::encode_public_key(&key.verifying_key()),
            created: chrono::Utc::now(),
            revoked: None,
        };
        (account, profile.to_yaml())
    }

    #[test]
    fn the_builtin_letter_names_the_student_and_attaches_the_profile() {
        let (a, text) = account("ada");
        let template = Template::load(None).unwrap();
        let mut s = settings();
        s.course = Some("CS 483".into());
        let letter = compose(&template, &a, &text, &s, Some("https://rai.example.edu")).unwrap();
        assert_eq!(letter.subject, "Your rai profile for CS 483");
        assert!(letter.body.starts_with("Hello Ada,"), "{}", letter.body);
        assert!(letter.body.contains("username: ada, team: gpu-wizards"));
        assert!(
            letter
                .body
                .contains("Your rai talks to https://rai.example.edu.")
        );
        let from: Mailbox = "Staff <staff@example.edu>".parse().unwrap();
        let raw = String::from_utf8(message(&letter, &from, None).unwrap().formatted()).unwrap();
        assert!(raw.contains("To: ada@example.edu"), "{raw}");
        assert!(raw.contains("filename=\"rai_profile\""), "{raw}");
    }

    #[test]
    fn a_template_is_checked_before_anything_is_sent() {
        assert!(Template::parse("Hello\n\nbody", "t").is_err());
        assert!(Template::parse("Subject: x\nbody", "t").is_err());
        let typo = Template::parse("Subject: hi {{ usrname }}\n\nbody\n", "t.txt").unwrap();
        let (a, text) = account("ada");
        let e = compose(&typo, &a, &text, &settings(), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.txt") && e.contains("undefined"), "{e}");
    }

    #[test]
    fn plain_text_is_refused_off_loopback_and_a_dry_run_sends_nothing() {
        let mut s = settings();
        s.server = Some("smtp.example.edu".into());
        s.from = Some("staff@example.edu".into());
        s.security = MailSecurity::None;
        let e = Mailer::new(&s).err().unwrap().to_string();
        assert!(e.contains("not a loopback address"), "{e}");
        s.security = MailSecurity::Starttls;
        assert!(Mailer::new(&s).is_ok());

        let dir = tempfile::tempdir().unwrap();
        let (a, text) = account("ada");
        std::fs::write(dir.path().join("ada.rai_profile"), &text).unwrap();
        let (mut b, _) = account("bob");
        b.revoked = Some(chrono::Utc::now());
        let registry = Registry { users: vec![a, b] };
        let template = Template::load(None).unwrap();
        let report = mail_profiles(
            &registry,
            &["ada".into(), "bob".into(), "eve".into()],
            dir.path(),
            &template,
            &s,
            None,
            None,
        );
        assert!(
            matches!(report[0].outcome, Outcome::Composed { .. }),
            "{report:?}"
        );
        assert_eq!(
            report[1].outcome,
            Outcome::Failed("the account is revoked".into())
        );
        assert_eq!(
            report[2].outcome,
            Outcome::Failed("no such user in the registry".into())
        );
        // Every active user when none is named: bob is revoked.
        let all = mail_profiles(&registry, &[], dir.path(), &template, &s, None, None);
        assert_eq!(all.len(), 1);
    }
}
