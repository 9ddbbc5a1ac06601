//! Where rai's files live on each operating system. Home-relative names (`~/.rai_profile`, `~/.rai_config.yml`,
//! `~/.rai_secret`) are kept from the 2017 client on every OS; the home directory comes from the `directories` crate,
//! which knows Linux, macOS and Windows.

use std::path::PathBuf;

/// The user's home directory.
pub fn home_dir() -> Option<PathBuf> {
    directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf())
}

/// The default profile path, `~/.rai_profile`.
pub fn default_profile() -> Option<PathBuf> {
    home_dir().map(|h| h.join(".rai_profile"))
}

/// Expands a leading `~/` to the home directory.
pub fn expand_home(path: &std::path::Path) -> PathBuf {
    match (path.strip_prefix("~"), home_dir()) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path.to_path_buf(),
    }
}
