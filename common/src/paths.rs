//! Where rai's files live on each operating system. Home-relative names (`~/.rai_profile`, `~/.rai_config.yml`,
//! `~/.rai_secret`) are kept from the 2017 client on every OS; the home directory comes from the `directories` crate,
//! which knows Linux, macOS and Windows.

use std::path::PathBuf;

/// The user's home directory.
pub fn home_dir() -> Option<PathBuf> {
    directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf())
}

/// The names a profile may have in the home directory, in the order the original client looked for them.
pub const PROFILE_NAMES: [&str; 4] = [".rai_profile", ".rai_env", ".rai.profile", ".rai.env"];

/// The default profile path: the first of [`PROFILE_NAMES`] that exists in the home directory, else
/// `~/.rai_profile`.
pub fn default_profile() -> Option<PathBuf> {
    home_dir().map(|h| profile_in(&h))
}

/// The first of [`PROFILE_NAMES`] that exists in `home`, else `home/.rai_profile`.
pub fn profile_in(home: &std::path::Path) -> PathBuf {
    PROFILE_NAMES
        .iter()
        .map(|name| home.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| home.join(PROFILE_NAMES[0]))
}

/// The user's cache folder for rai (`~/.cache/rai` on Linux, the platform's equivalent elsewhere): what only saves
/// work, such as the index of each project's files; deleting it is always safe.
pub fn cache_dir() -> PathBuf {
    directories::BaseDirs::new()
        .map(|d| d.cache_dir().join("rai"))
        .unwrap_or_else(|| std::env::temp_dir().join("rai-cache"))
}

/// Expands a leading `~/` to the home directory.
pub fn expand_home(path: &std::path::Path) -> PathBuf {
    match (path.strip_prefix("~"), home_dir()) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_found_in_the_original_order() {
        let home = tempfile::tempdir().unwrap();
        assert_eq!(profile_in(home.path()), home.path().join(".rai_profile"));
        for name in PROFILE_NAMES.iter().rev() {
            std::fs::write(home.path().join(name), "profile: {}\n").unwrap();
            assert_eq!(profile_in(home.path()), home.path().join(name));
        }
    }
}
