//! What commands share: the loaded configuration, the profile, the project directory, and the gateway client
//! signed in with the student's key.

use std::path::{Path, PathBuf};

use rai_common::account::{Profile, SigningKey};
use rai_common::build_spec::BuildWarning;
use rai_common::config::ConfigSources;
use rai_common::{BuildSpec, Config, paths};
use rai_crypto::AppSecret;

use crate::Client;
use crate::cli::GlobalArgs;

/// The configuration as this student's machine layers it.
pub fn load_config(global: &GlobalArgs) -> anyhow::Result<Config> {
    let secret = AppSecret::resolve(
        global.secret.as_deref(),
        |k| std::env::var(k).ok(),
        paths::home_dir().as_deref(),
    )?;
    Ok(Config::load(&ConfigSources::standard(None, secret))?)
}

/// The profile path: `--profile`, else the config's `profile`, else `~/.rai_profile`.
pub fn profile_path(global: &GlobalArgs, config: Option<&Config>) -> PathBuf {
    global
        .profile
        .clone()
        .or_else(|| config.and_then(|c| c.profile.clone()))
        .map(|p| paths::expand_home(&p))
        .or_else(paths::default_profile)
        .unwrap_or_else(|| PathBuf::from(".rai_profile"))
}

/// Reads the profile, with a note for each 2017 key it holds that rai ignores.
pub fn load_profile(global: &GlobalArgs, config: Option<&Config>) -> anyhow::Result<Profile> {
    let path = profile_path(global, config);
    let profile = Profile::load(&path)?;
    for key in profile.ignored_keys() {
        eprintln!(
            "rai: note: {}: `{key}` is a key of the 2017 client; rai ignores it (it never pushes images)",
            path.display()
        );
    }
    Ok(profile)
}

/// The build file of a project directory, read and checked, with what its reading warned about (unknown, repeated
/// or ignored keys: the original rai read them silently; rai says so).
pub fn load_build_spec(
    path: &Path,
) -> Result<(BuildSpec, Vec<BuildWarning>), rai_common::errors::BuildSpecError> {
    BuildSpec::load_with_warnings(path)
}

/// [`load_build_spec`] for a command that runs the build file: its warnings printed, or its error printed and
/// `None` (the caller exits with [`crate::exit::USAGE`]).
pub fn build_spec_to_run(path: &Path) -> Option<BuildSpec> {
    match load_build_spec(path) {
        Ok((spec, warnings)) => {
            for w in &warnings {
                eprintln!("rai: warning: {w}");
            }
            Some(spec)
        }
        Err(e) => {
            eprintln!("{e}");
            None
        }
    }
}

/// The configuration, the profile, and a client signed in with the profile's key.
pub struct Session {
    pub config: Config,
    pub profile: Profile,
    pub key: SigningKey,
    pub client: Client,
}

/// Loads the configuration and the profile and makes the gateway client.
pub fn session(global: &GlobalArgs) -> anyhow::Result<Session> {
    let config = load_config(global)?;
    let profile = load_profile(global, Some(&config))?;
    let key = profile.signing_key(&profile_path(global, Some(&config)).display().to_string())?;
    let client = Client::new(&config.client, &profile.username, key.clone())?;
    Ok(Session {
        config,
        profile,
        key,
        client,
    })
}
